# capfleet: see README.md. Every target works from a fresh clone; hack/ scripts install what is missing.
SHELL := /usr/bin/env bash
export PATH := /usr/local/go/bin:$(PATH)
CONTROLLER_GEN := go tool controller-gen
IMG ?= capfleet:dev

.PHONY: all build web generate manifests dist plugin verify fmt vet deps test e2e bench demo demo-down run clean

all: build

## generate: deepcopy code for the API types
generate:
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths=./api/...

## manifests: CRDs and RBAC from the markers in api/ and controllers/ (the operator) and ui/ (the web view)
manifests:
	$(CONTROLLER_GEN) crd:allowDangerousTypes=true rbac:roleName=capfleet-manager-role \
		paths="./api/...;./controllers/..." \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
	$(CONTROLLER_GEN) rbac:roleName=capfleet-ui-role paths="./ui/..." output:rbac:artifacts:config=config/ui

## dist: dist/install.yaml, the whole install (CRDs, RBAC, operator) rendered from config/default in one file,
## and the copies of config/ the Helm chart (charts/capfleet) carries
dist:
	@mkdir -p dist
	"$$(bash hack/envtest.sh)/kubectl" kustomize config/default > dist/install.yaml.tmp
	mv dist/install.yaml.tmp dist/install.yaml
	bash hack/chart-sync.sh

## plugin: the kubectl capfleet archive (linux amd64) in dist/ and their krew manifest, dist/krew/capfleet.yaml
plugin:
	bash hack/krew.sh plugin

# What generate, manifests and dist write
GENERATED := api/v1alpha1/zz_generated.deepcopy.go config/crd/bases config/rbac/role.yaml config/ui/role.yaml dist/install.yaml \
	ui/web/dist charts/capfleet/crds charts/capfleet/files

## verify: regenerate deepcopy, CRDs and RBAC; fail when they differ from what is committed
verify:
	@dirty=$$(git status --porcelain -- $(GENERATED)); \
	if [ -n "$$dirty" ]; then \
		echo "make verify: generated files have uncommitted changes (edited by hand, or regenerated and not committed):" >&2; \
		echo "$$dirty" >&2; \
		echo "make verify: revert or commit them first (git diff -- $(GENERATED)); they are never edited by hand" >&2; \
		exit 1; \
	fi
	$(MAKE) --no-print-directory generate manifests dist
	UI_WEB_FORCE=1 bash hack/ui-web.sh
	@changed=$$(git status --porcelain -- $(GENERATED)); \
	if [ -n "$$changed" ]; then \
		echo "make verify: the committed generated files are out of date with the markers in api/ and controllers/:" >&2; \
		echo "$$changed" >&2; \
		git --no-pager diff --stat -- $(GENERATED) >&2; \
		echo "make verify: commit the regenerated files now in the tree (make generate manifests dist)" >&2; \
		exit 1; \
	fi; \
	echo "make verify: deepcopy, CRDs, RBAC, dist/install.yaml and the web bundle match the markers in api/, controllers/ and ui/, config/ and ui/web"

fmt:
	gofmt -l -w $$(git ls-files '*.go')

vet: deps
	go vet ./...

## deps: Debian packages builds and tests need (libpcap, gcc, tcpdump, tcpreplay, tshark, Java 17, Maven...)
deps:
	bash hack/deps.sh

## build: the one binary, bin/capfleet, with the web page (ui/web, bundled by esbuild) embedded
build: deps web
	go build -o bin/capfleet ./cmd/capfleet

## web: ui/web/dist, the page capfleet ui embeds (npm ci + esbuild; nothing runs when its sources are unchanged)
web:
	bash hack/ui-web.sh

## test: unit tests plus the envtest suite against a real kube-apiserver and etcd, Kafka and Cassandra
test:
	bash hack/test.sh

## run: the operator against a local control plane with the samples applied (see README)
run: build
	bash hack/run-local.sh

## demo: a real node on this machine: operator, sensor, replay and pipeline end to end (see README)
demo: deps
	bash hack/demo.sh up

demo-down:
	bash hack/demo.sh down

## e2e: end-to-end test on the local node; brings up and takes down what it needs
e2e: deps
	bash hack/e2e.sh

## bench: benchmarks against tcpdump, tshark and tcpreplay
bench: build
	bash hack/bench.sh

clean:
	rm -rf bin
