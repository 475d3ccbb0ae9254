package workload

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func get(t *testing.T, addr net.Addr, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr.String() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func testRegistry() *prometheus.Registry {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "capfleet_test_total", Help: "A test counter."})
	c.Add(3)
	return NewRegistry(c)
}

func TestServeTwoAddresses(t *testing.T) {
	var notReady error = errors.New("not up yet")
	srv, err := Serve(context.Background(), HTTP{
		// Two spellings of loopback: equal addresses would share one listener.
		MetricsAddr: "127.0.0.1:0", HealthAddr: "localhost:0", Registry: testRegistry(),
		Ready: func() error { return notReady }, ReadyBody: "ready\n",
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if len(srv.Addrs()) != 2 {
		t.Fatalf("addrs %v, want metrics and health", srv.Addrs())
	}
	metrics, health := srv.Addrs()[0], srv.Addrs()[1]
	if code, body := get(t, metrics, "/metrics"); code != 200 || !strings.Contains(body, "capfleet_test_total 3\n") || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("/metrics %d %q", code, body)
	}
	if code, _ := get(t, metrics, "/healthz"); code != http.StatusNotFound {
		t.Fatalf("/healthz on the metrics port: %d", code)
	}
	if code, body := get(t, health, "/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz %d %q", code, body)
	}
	if code, body := get(t, health, "/readyz"); code != http.StatusServiceUnavailable || body != "not up yet\n" {
		t.Fatalf("/readyz before ready: %d %q", code, body)
	}
	notReady = nil
	if code, body := get(t, health, "/readyz"); code != 200 || body != "ready\n" {
		t.Fatalf("/readyz once ready: %d %q", code, body)
	}
}

func TestServeOneAddress(t *testing.T) {
	srv, err := Serve(context.Background(), HTTP{
		MetricsAddr: "127.0.0.1:0", HealthAddr: "127.0.0.1:0", Registry: testRegistry(),
		Healthy: func() error { return errors.New(`interface "x" vanished`) },
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	a := srv.Addrs()[0]
	if len(srv.Addrs()) != 1 {
		t.Fatalf("addrs %v, want one", srv.Addrs())
	}
	if code, _ := get(t, a, "/metrics"); code != 200 {
		t.Fatalf("/metrics %d", code)
	}
	if code, body := get(t, a, "/healthz"); code != http.StatusServiceUnavailable || body != "interface \"x\" vanished\n" {
		t.Fatalf("/healthz %d %q", code, body)
	}
	if code, body := get(t, a, "/readyz"); code != 200 || body != "ok\n" {
		t.Fatalf("/readyz %d %q", code, body)
	}
}

func TestServeBusyPortNamesFlag(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := ln.Addr().String()
	_, err = Serve(context.Background(), HTTP{MetricsAddr: "127.0.0.1:0", HealthAddr: busy}, nil)
	if err == nil || !strings.HasPrefix(err.Error(), "--health-addr "+busy+": ") {
		t.Fatalf("error %v, want one naming --health-addr", err)
	}
}

func TestServeStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := Serve(ctx, HTTP{MetricsAddr: "127.0.0.1:0", Registry: testRegistry()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	srv.Close() // waits for the shutdown ctx started
	if _, err := http.Get("http://" + srv.Addrs()[0].String() + "/metrics"); err == nil {
		t.Fatal("still serving after ctx ended")
	}
}

func TestServeNothing(t *testing.T) {
	srv, err := Serve(context.Background(), HTTP{}, nil)
	if err != nil || len(srv.Addrs()) != 0 {
		t.Fatalf("%v %v", srv.Addrs(), err)
	}
	srv.Close()
}
