package ui

import (
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"capfleet.dev/capfleet/api/v1alpha1"
)

// The UI reads captured data with its own credentials, so it must never answer a request the caller's
// own Kubernetes identity could not make: every request names its caller with a bearer token, the API
// server says who that is (TokenReview) and whether they may do what the request amounts to
// (SubjectAccessReview). Answers are remembered briefly so a page's dozen requests cost two reviews,
// and a revoked binding takes effect within reviewTTL.

// reviewTTL is how long a token's identity or an access decision is reused.
const reviewTTL = 10 * time.Second

var errNoToken = errors.New("no bearer token: send Authorization: Bearer TOKEN (kubectl create token ..., or your OIDC id token)")

// caller is an authenticated user as the API server described them.
type caller struct {
	user authnv1.UserInfo
	key  [32]byte // hash of the token, for the decision cache; the token itself is never kept
}

// access is a question about a caller: may they verb the resource (kind's plural) in namespace (""
// for every namespace), name ("" for any)?
type access struct {
	verb, resource, namespace, name string
}

type authorizer struct {
	kube kubernetes.Interface

	mu        sync.Mutex
	users     map[[32]byte]cachedUser
	decisions map[decisionKey]cachedDecision
	now       func() time.Time
}

type cachedUser struct {
	user    authnv1.UserInfo
	ok      bool
	expires time.Time
}

type decisionKey struct {
	token [32]byte
	a     access
}

type cachedDecision struct {
	allowed bool
	expires time.Time
}

func newAuthorizer(kube kubernetes.Interface) *authorizer {
	return &authorizer{kube: kube, users: map[[32]byte]cachedUser{}, decisions: map[decisionKey]cachedDecision{}, now: time.Now}
}

// authenticate returns the caller of r, or an error with the HTTP status to answer: 401 without a token
// or with one the API server does not accept, 503 when the API server cannot be asked.
func (a *authorizer) authenticate(r *http.Request) (*caller, int, error) {
	h := r.Header.Get("Authorization")
	token, ok := strings.CutPrefix(h, "Bearer ")
	token = strings.TrimSpace(token)
	if !ok || token == "" {
		return nil, http.StatusUnauthorized, errNoToken
	}
	key := sha256.Sum256([]byte(token))
	a.mu.Lock()
	c, hit := a.users[key]
	a.mu.Unlock()
	if !hit || a.now().After(c.expires) {
		tr, err := a.kube.AuthenticationV1().TokenReviews().Create(r.Context(),
			&authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
		if err != nil {
			return nil, http.StatusServiceUnavailable, errors.New("the API server could not review the token: " + err.Error())
		}
		c = cachedUser{user: tr.Status.User, ok: tr.Status.Authenticated, expires: a.now().Add(reviewTTL)}
		a.mu.Lock()
		a.prune()
		a.users[key] = c
		a.mu.Unlock()
	}
	if !c.ok {
		return nil, http.StatusUnauthorized, errors.New("the API server does not accept this token")
	}
	return &caller{user: c.user, key: key}, 0, nil
}

// allowed asks the API server whether c may do what q describes.
func (a *authorizer) allowed(ctx context.Context, c *caller, q access) (bool, error) {
	k := decisionKey{c.key, q}
	a.mu.Lock()
	d, hit := a.decisions[k]
	a.mu.Unlock()
	if hit && a.now().Before(d.expires) {
		return d.allowed, nil
	}
	extra := map[string]authzv1.ExtraValue{}
	for k, v := range c.user.Extra {
		extra[k] = authzv1.ExtraValue(v)
	}
	sar, err := a.kube.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
		User: c.user.Username, Groups: c.user.Groups, UID: c.user.UID, Extra: extra,
		ResourceAttributes: &authzv1.ResourceAttributes{
			Group: v1alpha1.GroupVersion.Group, Resource: q.resource, Verb: q.verb, Namespace: q.namespace, Name: q.name,
		},
	}}, metav1.CreateOptions{})
	if err != nil {
		return false, err
	}
	a.mu.Lock()
	a.prune()
	a.decisions[k] = cachedDecision{allowed: sar.Status.Allowed, expires: a.now().Add(reviewTTL)}
	a.mu.Unlock()
	return sar.Status.Allowed, nil
}

// prune drops expired entries once the caches grow, so a stream of distinct tokens cannot fill memory.
// Called with mu held.
func (a *authorizer) prune() {
	if len(a.users)+len(a.decisions) < 4096 {
		return
	}
	now := a.now()
	for k, u := range a.users {
		if now.After(u.expires) {
			delete(a.users, k)
		}
	}
	for k, d := range a.decisions {
		if now.After(d.expires) {
			delete(a.decisions, k)
		}
	}
}
