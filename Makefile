# lxcfs-oci: container-aware /proc and /sys for any OCI runtime.
PREFIX   ?= /usr/local
DESTDIR  ?=
BINDIR   := $(DESTDIR)$(PREFIX)/bin
HOOKSDIR ?= $(DESTDIR)/usr/share/containers/oci/hooks.d
GO       ?= go
# Integration tests start real containers; bound the whole run.
TEST_TIMEOUT ?= 12m

BINS := bin/lxcfs-fused bin/lxcfs-hook

.PHONY: all build deps test unit vet demo bench install uninstall clean

all: build

build:
	$(GO) build -o bin/lxcfs-fused ./cmd/lxcfs-fused
	$(GO) build -o bin/lxcfs-hook ./cmd/lxcfs-hook

# Debian packages the tests and the demo need, installed when absent.
deps:
	./scripts/install-deps.sh

vet:
	@test -z "$$(gofmt -l cmd pkg integration)" || { echo "gofmt needed:"; gofmt -l cmd pkg integration; exit 1; }
	$(GO) vet ./...

# Everything: unit tests, fuzz seed corpora, and (as root) the integration
# tests against FUSE, cgroups, runc and podman.
test: deps vet
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...

# Unit tests only: no root, no packages.
unit:
	$(GO) test -count=1 ./pkg/...

demo: build
	./scripts/install-deps.sh --minimal
	BIN_DIR=$(CURDIR)/bin bash scripts/demo.sh

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./pkg/...

install: build
	install -d $(BINDIR) $(HOOKSDIR)
	install -m 0755 bin/lxcfs-fused bin/lxcfs-hook $(BINDIR)/
	sed 's|/usr/local/bin/lxcfs-hook|$(PREFIX)/bin/lxcfs-hook|' hooks.d/lxcfs.json > $(HOOKSDIR)/lxcfs.json
	chmod 0644 $(HOOKSDIR)/lxcfs.json

uninstall:
	rm -f $(BINDIR)/lxcfs-fused $(BINDIR)/lxcfs-hook $(HOOKSDIR)/lxcfs.json

clean:
	rm -rf bin
