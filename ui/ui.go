// Package ui is `capfleet ui`: a small web view of the fleet (CaptureSensors, PacketPipelines and
// ReplayJobs, live from watches), the communication graph, top talkers and a flow search with each flow's
// packets as a pcap. Its reads are the query package's, the ones `capfleet query` makes. Access follows
// Kubernetes RBAC: every API request carries the caller's bearer token and is answered only when the API
// server says that user may list the resources shown or get the PacketPipeline whose data is asked for.
//
//	kubectl -n capfleet-system port-forward svc/capfleet-ui 8080:80
//	open http://127.0.0.1:8080 and paste a token (kubectl create token NAME)
//
// The page itself (ui/web, built with esbuild into ui/web/dist and embedded here) is public: it holds no
// data, only the code that asks for it.
package ui

import (
	"context"
	"crypto/tls"
	"embed"
	"encoding/json"
	"errors"
	"io/fs"
	"net"
	"net/http"
	"time"

	"github.com/go-logr/logr"
	"github.com/gocql/gocql"
	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	ctrlcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"capfleet.dev/capfleet/internal/cassconn"
	"capfleet.dev/capfleet/manager"
)

// What the UI's own identity may do, no more: review tokens and access, and watch the three kinds.
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create
// +kubebuilder:rbac:groups=capture.capfleet.dev,resources=capturesensors;packetpipelines;replayjobs,verbs=get;list;watch

//go:embed all:web/dist
var webDist embed.FS

// Options configure a Server.
type Options struct {
	// Config reaches the API server as the UI's own identity.
	Config *rest.Config
	// Cassandra reaches the stored data; the keyspace comes from each PacketPipeline.
	Cassandra cassconn.Config
	Log       logr.Logger
}

// Server is the web view. Start it with Run, or mount Handler after Start.
type Server struct {
	auth     *authorizer
	fleet    *fleetWatch
	sessions *sessions
	log      logr.Logger
	cache    ctrlcache.Cache
}

// New builds the server; Start must run before it answers.
func New(ctx context.Context, o Options) (*Server, error) {
	kube, err := kubernetes.NewForConfig(o.Config)
	if err != nil {
		return nil, err
	}
	c, err := ctrlcache.New(o.Config, ctrlcache.Options{Scheme: manager.Scheme()})
	if err != nil {
		return nil, err
	}
	fw, err := newFleetWatch(ctx, c)
	if err != nil {
		return nil, err
	}
	cass := o.Cassandra
	return &Server{
		auth: newAuthorizer(kube), fleet: fw, log: o.Log, cache: c,
		sessions: &sessions{cluster: func() (*gocql.ClusterConfig, error) { return cass.Cluster() }, open: map[string]*gocql.Session{}},
	}, nil
}

// Start runs the watches until ctx ends and waits until they have synced.
func (s *Server) Start(ctx context.Context) error {
	go func() {
		if err := s.cache.Start(ctx); err != nil {
			s.log.Error(err, "the watches stopped")
		}
	}()
	if !s.cache.WaitForCacheSync(ctx) {
		return errors.New("the watches of CaptureSensors, PacketPipelines and ReplayJobs did not sync")
	}
	return nil
}

// Close closes the Cassandra sessions.
func (s *Server) Close() { s.sessions.close() }

// Handler serves the page and its API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(webDist, "web/dist")
	mux.Handle("GET /", securityHeaders(http.FileServerFS(static)))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	for path, h := range map[string]http.HandlerFunc{
		"/api/fleet": s.handleFleet, "/api/events": s.handleEvents,
		"/api/graph": s.handleGraph, "/api/top": s.handleTop, "/api/flows": s.handleFlows,
		"/api/pcap": s.handlePcap, "/api/traffic": s.handleTraffic,
	} {
		mux.Handle("GET "+path, securityHeaders(h))
	}
	return mux
}

// securityHeaders keep the page from being framed or fed foreign scripts; captured data is sensitive.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; frame-ancestors 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		h.ServeHTTP(w, r)
	})
}

// authenticated returns the caller of r, or answers 401/503 and returns false.
func (s *Server) authenticated(w http.ResponseWriter, r *http.Request) (*caller, bool) {
	c, code, err := s.auth.authenticate(r)
	if err != nil {
		if code == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="capfleet"`)
		}
		httpError(w, code, err)
		return nil, false
	}
	return c, true
}

func httpError(w http.ResponseWriter, code int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(v)
}

// NewCommand returns `capfleet ui`.
func NewCommand() *cobra.Command {
	var (
		addr, kubeconfig  string
		certFile, keyFile string
		cass              cassconn.Config
	)
	cmd := &cobra.Command{
		Use:   "ui",
		Short: "Serve the web view: the fleet live, the communication graph, top talkers and flows, checked against Kubernetes RBAC",
		Long: `Serves a web page of the fleet (every CaptureSensor, PacketPipeline and ReplayJob, live), the
communication graph with a time slider, top talkers and a flow search whose flows download as pcap.
Every request of the page carries the user's bearer token; the UI asks the API server who that is
(TokenReview) and whether they may list the resources shown or get the PacketPipeline whose stored data
is asked for (SubjectAccessReview), and refuses otherwise. Reach it with kubectl port-forward, or give it
a certificate (--tls-cert-file, --tls-key-file: a kubernetes.io/tls Secret's tls.crt and tls.key, reloaded
when the Secret is renewed) before exposing it any other way: the page sends bearer tokens.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctrl.SetLogger(zap.New())
			log := ctrl.Log.WithName("ui")
			tc, err := tlsConfig(certFile, keyFile)
			if err != nil {
				return err
			}
			cfg, err := restConfig(kubeconfig)
			if err != nil {
				return err
			}
			ctx := ctrl.SetupSignalHandler()
			s, err := New(ctx, Options{Config: cfg, Cassandra: cass, Log: log})
			if err != nil {
				return err
			}
			defer s.Close()
			if err := s.Start(ctx); err != nil {
				return err
			}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return err
			}
			log.Info("serving", "addr", ln.Addr().String(), "tls", tc != nil)
			return serve(ctx, ln, s.Handler(), tc)
		},
	}
	cmd.Flags().StringVar(&addr, "addr", ":8080", "address to serve the page and its API on")
	cmd.Flags().StringVar(&certFile, "tls-cert-file", "", "serve HTTPS with this certificate (PEM, chain included); reloaded when it changes")
	cmd.Flags().StringVar(&keyFile, "tls-key-file", "", "the private key of --tls-cert-file (PEM)")
	cmd.Flags().StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file of the UI's own identity; empty uses $KUBECONFIG or the in-cluster config")
	cass.AddFlags(cmd.Flags())
	return cmd
}

// serve answers on ln until ctx ends, over TLS when tc is set.
func serve(ctx context.Context, ln net.Listener, h http.Handler, tc *tls.Config) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, TLSConfig: tc}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	var err error
	if tc != nil {
		err = srv.ServeTLS(ln, "", "")
	} else {
		err = srv.Serve(ln)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == "" {
		return ctrl.GetConfig()
	}
	return clientcmd.BuildConfigFromFlags("", kubeconfig)
}
