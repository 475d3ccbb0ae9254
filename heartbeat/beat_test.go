package heartbeat

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestEncodeDecodeRoundTrip(t *testing.T) {
	b := sensorPod("sensor-a", "node-a").beat(Counters{Packets: 1, Bytes: 2,
		Drops: Drops{KernelRing: 3, Interface: 4, SensorQueue: 5, KafkaProduce: 6}, DecodeErrors: 7, Filtered: 8,
		SinkErrors: 9, FlowsWritten: 10, RecordsIn: 11, RecordsOut: 12, PacketsDone: 13, BytesDone: 14,
		Failed: 15, Truncated: 16, FlowsActive: 17, ConsumerLag: 18, PacketsTotal: 19, BytesTotal: 20})
	b.Final = true
	v, err := Encode(b)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(v)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, b) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, b)
	}
	for _, field := range []string{`"v":1`, `"kernel_ring":3`, `"sensor_queue":5`, `"kafka_produce":6`, `"consumer_lag":18`, `"started_at"`} {
		if !strings.Contains(string(v), field) {
			t.Errorf("%s missing from %s", field, v)
		}
	}
}

func TestCounterFieldsCoverEveryMonotonicField(t *testing.T) {
	// Each counter set to a distinct value must show up in counterFields once.
	var c Counters
	for i, f := range c.counterFields() {
		*f = uint64(i + 1)
	}
	gauges := map[string]bool{"FlowsActive": true, "ConsumerLag": true, "PacketsTotal": true, "BytesTotal": true, "Exporters": true}
	var walk func(v reflect.Value, path string)
	walk = func(v reflect.Value, path string) {
		for i := range v.NumField() {
			f, name := v.Field(i), v.Type().Field(i).Name
			if f.Kind() == reflect.Struct {
				walk(f, path+name+".")
				continue
			}
			if !gauges[name] && f.Uint() == 0 {
				t.Errorf("counter %s%s is not in counterFields", path, name)
			}
		}
	}
	walk(reflect.ValueOf(c), "")
	var r Rates
	if len(r.fields()) != len(c.counterFields()) {
		t.Error("Rates.fields and Counters.counterFields differ in length")
	}
}

func TestDecodeRefuses(t *testing.T) {
	good := `"kind":"CaptureSensor","namespace":"ns","name":"n","pod":"p","time":"2026-11-25T12:00:00Z","started_at":"2026-11-25T11:00:00Z"`
	for _, tc := range []struct{ value, want string }{
		{`not json`, "invalid character"},
		{`{"v":2,` + good + `}`, "unsupported version 2"},
		{`{` + good + `}`, "unsupported version 0"},
		{`{"v":1,` + strings.Replace(good, "CaptureSensor", "Deployment", 1) + `}`, `unknown kind "Deployment"`},
		{`{"v":1,` + strings.Replace(good, `"pod":"p"`, `"pod":""`, 1) + `}`, "without pod"},
		{`{"v":1,` + strings.Replace(good, `"name":"n"`, `"name":""`, 1) + `}`, "without namespace or name"},
		{`{"v":1,` + strings.Replace(good, `"2026-11-25T11:00:00Z"`, `"0001-01-01T00:00:00Z"`, 1) + `}`, "without time or started_at"},
		{`{"v":1,` + good + `,"counters":{"packets":-1}}`, "cannot unmarshal"},
	} {
		_, err := Decode([]byte(tc.value))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Decode(%s) = %v, want an error with %q", tc.value, err, tc.want)
		}
	}
	if _, err := Decode([]byte(`{"v":2}`)); !errors.Is(err, ErrVersion) {
		t.Errorf("%v is not ErrVersion", err)
	}
	if _, err := Decode([]byte(`{"v":1,` + good + `,"added_later":true}`)); err != nil {
		t.Errorf("an unknown field of a later v1 writer: %v", err)
	}
}

func TestFlagsAndEnvironment(t *testing.T) {
	t.Setenv(EnvNamespace, "capture")
	t.Setenv(EnvName, "edge")
	t.Setenv(EnvUID, "1234")
	t.Setenv(EnvPod, "edge-x7")
	t.Setenv(EnvNode, "node-3")
	cfg := DefaultConfig(KindCaptureSensor)
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	cfg.AddFlags(fs)
	if err := fs.Parse([]string{"--heartbeat-interval=2s", "--resource-name=other"}); err != nil {
		t.Fatal(err)
	}
	want := Config{Topic: DefaultTopic, Interval: 2 * time.Second, Kind: KindCaptureSensor, Namespace: "capture",
		Name: "other", UID: "1234", Pod: "edge-x7", Node: "node-3"}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("config %+v, want %+v", cfg, want)
	}
	if err := cfg.Validate(); err != nil || !cfg.Enabled() {
		t.Errorf("valid config: %v (enabled %v)", err, cfg.Enabled())
	}
	cfg.Interval = time.Millisecond
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "--heartbeat-interval") {
		t.Errorf("1ms interval: %v", err)
	}
	cfg.Interval, cfg.Kind = time.Second, "Pod"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "unknown kind") {
		t.Errorf("bad kind: %v", err)
	}
}

func TestOffByDefaultWithoutAResource(t *testing.T) {
	t.Setenv(EnvName, "")
	cfg := DefaultConfig(KindReplayJob)
	if cfg.Enabled() {
		t.Error("heartbeats on for a process serving no resource")
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("a disabled config is valid: %v", err)
	}
}
