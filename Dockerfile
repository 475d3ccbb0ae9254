# The capfleet image as users build it: `docker build -t capfleet:dev .`
# One binary, entrypoint /capfleet, every subcommand (manager, sensor, replay, process, query...).
# The local cluster builds the same layout without Docker: hack/imgbuild puts bin/capfleet and the
# shared libraries it loads (libpcap, liblz4 and their dependencies) into an image tarball.
FROM golang:1.26-bookworm AS build
# nodejs and npm build the web page capfleet ui embeds (hack/ui-web.sh: npm ci + esbuild).
RUN apt-get update && apt-get install -y --no-install-recommends libpcap-dev liblz4-dev nodejs npm && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN UI_WEB_FORCE=1 bash hack/ui-web.sh
# cgo: the sensor captures with libpcap (gopacket/pcap) and compresses Kafka batches with liblz4.
RUN CGO_ENABLED=1 go build -trimpath -ldflags '-s -w' -o /out/capfleet ./cmd/capfleet

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends libpcap0.8 liblz4-1 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/capfleet /capfleet
# The manifests run non-root (65532) except the capture and interface-replay workloads, which need root
# for their added capabilities.
USER 65532:65532
ENTRYPOINT ["/capfleet"]
