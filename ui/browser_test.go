package ui

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"capfleet.dev/capfleet/internal/testenv"
)

// chrome starts Debian's Chromium headless with a fresh profile and returns a tab's context and what
// closes it.
func chrome(t *testing.T) (context.Context, func()) {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		testenv.Missing(t, "chromium not found: hack/deps.sh installs Debian's chromium")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1400, 900),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	ctx, cancelTime := context.WithTimeout(ctx, 3*time.Minute)
	closeAll := func() { cancelTime(); cancelTab(); cancelAlloc() }
	t.Cleanup(closeAll)
	return ctx, closeAll
}

// artifacts is where the browser test leaves its screenshots (PNG) and the pcap it downloaded: ui/artifacts,
// git-ignored.
func artifacts(t *testing.T) string {
	t.Helper()
	d := filepath.Join(testenv.Root(t), "ui", "artifacts")
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// do runs steps that return nothing, failing the test with what they were for.
func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// value runs one action and returns its value.
func value[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

func poll(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(20*time.Second))
}

func eval(expr string) chromedp.Action[chromedp.Void] { return chromedp.Evaluate[chromedp.Void](expr) }

func css(s string) chromedp.CSS { return chromedp.CSS(s) }

// The page in a real browser: the fleet table shows the envtest cluster's resources with their figures
// and follows a replay to 100%; the graph draws one node per host tshark finds in the capture; a
// flow's pcap link downloads the packets tcpdump selects, byte for byte; and a user without access
// is refused. Screenshots of the fleet and the graph are left in ui/artifacts.
func TestBrowser(t *testing.T) {
	ctx, closeBrowser := chrome(t)
	l := startLab(t)
	// The browser goes first, so the server's Close does not wait for its open event stream.
	t.Cleanup(closeBrowser)
	out := artifacts(t)

	// Refused: the outsider's token is valid, but RBAC gives them nothing to list.
	do(t, ctx, "the outsider's page",
		chromedp.Navigate(l.url),
		chromedp.WaitVisible(css("#token")),
		chromedp.SendKeys(css("#token"), l.outside),
		chromedp.Click(css("#login button")),
		poll(`document.querySelector("#status").textContent.startsWith("403")`),
	)
	if msg := value(t, ctx, "status", chromedp.TextContent(css("#status"))); !strings.Contains(msg, "may not list") {
		t.Errorf("the outsider is told %q", msg)
	}
	if rows := value(t, ctx, "rows", chromedp.Evaluate[int](`document.querySelectorAll("#sensors tbody tr").length`)); rows != 0 {
		t.Errorf("the outsider's fleet table has %d rows", rows)
	}

	// The analyst sees the fleet with the figures of its status.
	do(t, ctx, "the analyst's fleet",
		chromedp.SendKeys(css("#token"), l.analyst),
		chromedp.Click(css("#login button")),
		chromedp.WaitVisible(css(`#replays tr[data-name="lab-replay"]`)),
	)
	// The rates change, as the operator rewrites them every few seconds: the table follows each, and the
	// sparkline draws them.
	for _, pps := range []int64{3900, 4400, 3600, 4100, 4321} {
		l.setSensorRate(t, pps)
		do(t, ctx, "the sensor at "+strconv.FormatInt(pps, 10)+"/s",
			poll(`document.querySelector('#sensors tr[data-name="lab-sensor"]').cells[3].textContent === "`+commas(pps)+`"`))
	}
	if n := value(t, ctx, "sparkline", chromedp.Evaluate[int](`document.querySelector('#sensors tr[data-name="lab-sensor"] polyline').points.length`)); n < 5 {
		t.Errorf("the sparkline has %d points after 5 rates", n)
	}
	sensors := value(t, ctx, "sensors", chromedp.TextContent(css("#sensors tbody")))
	pipelines := value(t, ctx, "pipelines", chromedp.TextContent(css("#pipelines tbody")))
	replays := value(t, ctx, "replays", chromedp.TextContent(css("#replays tbody")))
	for _, want := range []string{"lab-sensor", "2/2", "4,321", "2,500,000", "0.16%", "node-a", "4,000", "2,400,000", "node-b", "321", "100,000"} {
		if !strings.Contains(sensors, want) {
			t.Errorf("sensors table lacks %q:\n%s", want, sensors)
		}
	}
	for _, want := range []string{"lab-flows", "4,300", "4,290", "1,234"} {
		if !strings.Contains(pipelines, want) {
			t.Errorf("pipelines table lacks %q:\n%s", want, pipelines)
		}
	}
	for _, want := range []string{"lab-replay", "Running", "27%", "12 / 43"} {
		if !strings.Contains(replays, want) {
			t.Errorf("replays table lacks %q:\n%s", want, replays)
		}
	}
	must(t, os.WriteFile(filepath.Join(out, "fleet.png"), value(t, ctx, "fleet screenshot", chromedp.FullScreenshot(100)), 0o644))

	// The operator finishes the replay: the bar follows, through the watch and the event stream.
	l.setReplay(t, 43, 43)
	do(t, ctx, "the progress bar at 100%", chromedp.WaitVisible(css(`#replays tr[data-name="lab-replay"] [role=progressbar][aria-valuenow="100"]`)))
	if w := value(t, ctx, "bar width", chromedp.Evaluate[string](`document.querySelector('#replays tr[data-name="lab-replay"] .bar > div').style.width`)); w != "100%" {
		t.Errorf("the bar is %s wide at 100%%", w)
	}

	// The graph of the DNS capture: one node per host tshark lists.
	dns := l.captures["dns.pcap"]
	want := sortedKeys(tsharkEndpoints(t, dns.path))
	do(t, ctx, "the graph",
		eval(`location.hash = "#graph"`),
		chromedp.WaitVisible(css("#graph-form")),
		poll(`document.querySelectorAll("#pipeline option").length > 0`),
		chromedp.SetValue(css("#from"), dns.first.Add(-time.Second).Format(time.RFC3339Nano)),
		chromedp.SetValue(css("#to"), dns.last.Add(time.Second).Format(time.RFC3339Nano)),
		chromedp.SetValue(css("#window"), "5ms"),
		chromedp.Click(css("#graph-form button")),
		poll(`window.capfleetGraph && window.capfleetGraph.nodes().length > 0`),
	)
	nodes := value(t, ctx, "graph nodes", chromedp.Evaluate[[]string](`window.capfleetGraph.nodes().map(n => n.id())`))
	sort.Strings(nodes)
	if strings.Join(nodes, " ") != strings.Join(want, " ") {
		t.Errorf("graph nodes %v, tshark's endpoints %v", nodes, want)
	}
	// One step of the slider shows the pairs of one window only.
	visible := value(t, ctx, "slider", chromedp.Evaluate[int](`(() => { const s = document.querySelector("#slider"); s.value = "1"; s.dispatchEvent(new Event("input")); return window.capfleetGraph.nodes().filter(n => n.style("display") !== "none").length })()`))
	if visible == 0 || visible >= len(want) {
		t.Errorf("the first window shows %d of %d hosts; the capture's 20 ms in 5 ms windows should show some, not all", visible, len(want))
	}
	do(t, ctx, "the whole graph again",
		eval(`(() => { const s = document.querySelector("#slider"); s.value = "0"; s.dispatchEvent(new Event("input")); window.capfleetGraph.fit(undefined, 40); })()`),
		chromedp.Sleep(300*time.Millisecond),
	)
	must(t, os.WriteFile(filepath.Join(out, "graph.png"), value(t, ctx, "graph screenshot", chromedp.FullScreenshot(100)), 0o644))

	// The traffic chart: one bar per second with packets, summing to the frames tshark reads.
	do(t, ctx, "the traffic chart",
		eval(`location.hash = "#traffic"`),
		chromedp.WaitVisible(css("#traffic-form")),
		chromedp.Click(css("#traffic-form button")),
		poll(`document.querySelectorAll("#traffic rect.step").length > 0`),
	)
	bars := value(t, ctx, "traffic bars", chromedp.Evaluate[[]int](`[...document.querySelectorAll("#traffic rect.step")].map(r => Number(r.dataset.value))`))
	frames := 0
	for _, n := range bars {
		frames += n
	}
	if wantFrames := sumValues(tsharkEndpoints(t, dns.path)) / 2; frames != int(wantFrames) {
		t.Errorf("the traffic chart's bars hold %d packets, tshark reads %d frames", frames, wantFrames)
	}
	must(t, os.WriteFile(filepath.Join(out, "traffic.png"), value(t, ctx, "traffic screenshot", chromedp.FullScreenshot(100)), 0o644))

	// Top talkers by packets: the hosts and counts of tshark's endpoints.
	endpoints := tsharkEndpoints(t, dns.path)
	do(t, ctx, "top talkers",
		eval(`location.hash = "#top"`),
		chromedp.WaitVisible(css("#top-form")),
		chromedp.SetValue(css("#by"), "packets"),
		chromedp.Click(css("#top-form button")),
		poll(`document.querySelectorAll("#top tbody tr").length > 0`),
	)
	top := value(t, ctx, "top rows", chromedp.Evaluate[[][]string](`[...document.querySelectorAll("#top tbody tr")].map(r => [r.cells[0].textContent, r.cells[3].textContent])`))
	if len(top) != len(endpoints) {
		t.Errorf("top talkers: %d rows, tshark %d endpoints", len(top), len(endpoints))
	}
	for _, r := range top {
		if r[1] != strconv.FormatUint(endpoints[r[0]], 10) {
			t.Errorf("top talkers: %s has %s packets, tshark %d", r[0], r[1], endpoints[r[0]])
		}
	}

	// A flow found by address and port downloads as the packets tcpdump selects from the capture.
	httpCap := l.captures["http.pcap"]
	f := httpCap.flows[0]
	dl := t.TempDir()
	if _, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dl, EventsEnabled: new(true)}); err != nil {
		t.Fatal(err)
	}
	ectx, stop := context.WithTimeout(ctx, 60*time.Second)
	defer stop()
	progress := chromedp.BrowserEvents(ectx, browser.DownloadProgress)
	do(t, ctx, "the flow search",
		eval(`location.hash = "#flows"`),
		chromedp.WaitVisible(css("#flows-form")),
		chromedp.SetValue(css("#from"), httpCap.first.Add(-time.Second).Format(time.RFC3339Nano)),
		chromedp.SetValue(css("#to"), httpCap.last.Add(time.Second).Format(time.RFC3339Nano)),
		chromedp.SetValue(css("#ip"), f.RespAddr.String()),
		chromedp.SetValue(css("#port"), strconv.Itoa(int(f.RespPort))),
		chromedp.Click(css("#flows-form button")),
		chromedp.WaitVisible(css(`#flows a.pcap[data-uid="`+f.UID+`"]`)),
		chromedp.Click(css(`#flows a.pcap[data-uid="`+f.UID+`"]`)),
	)
	guid := ""
	for ev, err := range progress {
		if err != nil {
			t.Fatalf("waiting for the pcap download: %v", err)
		}
		if ev.State == browser.DownloadProgressStateCompleted {
			guid = ev.GUID
			break
		}
	}
	got, err := os.ReadFile(filepath.Join(dl, guid))
	if err != nil {
		t.Fatal(err)
	}
	must(t, os.WriteFile(filepath.Join(out, "flow.pcap"), got, 0o644))
	tcpdump := tcpdumpFlow(t, httpCap.path, flowFilter(f.OrigAddr.String(), f.RespAddr.String(), f.OrigPort, f.RespPort))
	if n := comparePcapRecords(t, got, tcpdump); n != 10 {
		t.Errorf("the download has %d packets, the capture's connection 10", n)
	}
}

// commas writes n as the page does (en-US grouping).
func commas(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// sumValues adds a map's values: over tshark's endpoints each IPv4 packet counts twice, once per end.
func sumValues(m map[string]uint64) uint64 {
	var n uint64
	for _, v := range m {
		n += v
	}
	return n
}
