package kafkaconn

// SelfSigned lets the external broker tests make a CA the broker never saw.
var SelfSigned = selfSigned
