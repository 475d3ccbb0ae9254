package displayfilter

// The grammar, as tshark 4.0 reads it (and binds tighter than or, not tighter than both):
//
//	expr    = and { ("or" | "||") and }
//	and     = unary { ("and" | "&&") unary }
//	unary   = ("not" | "!") unary | "(" expr ")" | test
//	test    = operand [ relation operand | "in" set ]
//	operand = word [layer] [ "&" word ] | string | char
//	set     = "{" element { "," element } "}"   element = operand [ ".." operand ]

type exprNode interface{ isExpr() }

type andExpr struct{ a, b exprNode }
type orExpr struct{ a, b exprNode }
type notExpr struct{ x exprNode }

// testExpr is a field on its own (present or not) or a relation.
type testExpr struct {
	lhs   operand
	hasOp bool
	op    token
	rhs   operand   // relations other than in
	set   []element // in
}

func (andExpr) isExpr()  {}
func (orExpr) isExpr()   {}
func (notExpr) isExpr()  {}
func (testExpr) isExpr() {}

type operand struct {
	tok   token
	layer *token // tLayer after a field name
	mask  *token // the word after "&"
}

type element struct {
	lo, hi  operand
	isRange bool
}

type parser struct {
	toks []token
	i    int
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

// unexpected reports t as tshark does: at its place, or as an unexpected end.
func unexpected(t token) *Error {
	if t.kind == tEOF {
		return &Error{Class: ClassEnd, Pos: -1, End: -1, Msg: "unexpected end of filter expression"}
	}
	if t.kind == tLBracket {
		return errAt(ClassUnsupported, t.pos, t.end, "slices (\"field[i:j]\") are not supported")
	}
	return errAt(ClassSyntax, t.pos, t.end, "%q was unexpected in this context", t.text)
}

func parse(s string) (exprNode, *Error) {
	toks, err := lex(s)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	e, err := p.expr(0)
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, unexpected(t)
	}
	return e, nil
}

// maxDepth bounds nesting so that a filter of a million "(" fails instead of exhausting the stack.
const maxDepth = 256

func (p *parser) expr(depth int) (exprNode, *Error) {
	a, err := p.and(depth)
	if err != nil {
		return nil, err
	}
	for p.peek().kind == tOr {
		p.next()
		b, err := p.and(depth)
		if err != nil {
			return nil, err
		}
		a = orExpr{a, b}
	}
	return a, nil
}

func (p *parser) and(depth int) (exprNode, *Error) {
	a, err := p.unary(depth)
	if err != nil {
		return nil, err
	}
	for p.peek().kind == tAnd {
		p.next()
		b, err := p.unary(depth)
		if err != nil {
			return nil, err
		}
		a = andExpr{a, b}
	}
	return a, nil
}

func (p *parser) unary(depth int) (exprNode, *Error) {
	if depth > maxDepth {
		t := p.peek()
		return nil, errAt(ClassUnsupported, t.pos, t.end, "nested more than %d deep", maxDepth)
	}
	switch t := p.peek(); t.kind {
	case tNot:
		p.next()
		x, err := p.unary(depth + 1)
		if err != nil {
			return nil, err
		}
		return notExpr{x}, nil
	case tLParen:
		p.next()
		x, err := p.expr(depth + 1)
		if err != nil {
			return nil, err
		}
		if c := p.next(); c.kind != tRParen {
			return nil, unexpected(c)
		}
		return x, nil
	}
	return p.test()
}

func (p *parser) operand() (operand, *Error) {
	t := p.next()
	switch t.kind {
	case tString, tChar:
		return operand{tok: t}, nil
	case tWord:
	default:
		return operand{}, unexpected(t)
	}
	o := operand{tok: t}
	if p.peek().kind == tLParen {
		return o, errAt(ClassUnsupported, t.pos, t.end, "functions (%s()) are not supported", t.text)
	}
	if p.peek().kind == tLayer {
		l := p.next()
		o.layer = &l
	}
	if p.peek().kind == tBitAnd {
		p.next()
		m := p.next()
		if m.kind != tWord {
			return o, unexpected(m)
		}
		o.mask = &m
	}
	return o, nil
}

func (p *parser) test() (exprNode, *Error) {
	lhs, err := p.operand()
	if err != nil {
		return nil, err
	}
	t := testExpr{lhs: lhs}
	if p.peek().kind != tRel {
		return t, nil
	}
	t.hasOp, t.op = true, p.next()
	if t.op.op != opIn {
		if t.rhs, err = p.operand(); err != nil {
			return nil, err
		}
		return t, nil
	}
	if b := p.next(); b.kind != tLBrace {
		return nil, unexpected(b)
	}
	for {
		var e element
		if e.lo, err = p.operand(); err != nil {
			return nil, err
		}
		if p.peek().kind == tDotDot {
			p.next()
			e.isRange = true
			if e.hi, err = p.operand(); err != nil {
				return nil, err
			}
		}
		t.set = append(t.set, e)
		switch c := p.next(); c.kind {
		case tComma:
			continue
		case tRBrace:
			return t, nil
		default:
			return nil, unexpected(c)
		}
	}
}
