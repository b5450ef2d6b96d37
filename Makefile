# lxcfs-oci: container-aware /proc and /sys for any OCI runtime.
# make install [PREFIX=/usr/local] [DESTDIR=staging dir]; every *DIR is a
# path on the target system, DESTDIR is prepended only when copying.
PREFIX   ?= /usr/local
DESTDIR  ?=
BINDIR   ?= $(PREFIX)/bin
MANDIR   ?= $(PREFIX)/share/man
# The packaged hooks directory podman and CRI-O both read, whatever PREFIX.
HOOKSDIR ?= /usr/share/containers/oci/hooks.d
# systemd reads units from /usr/local/lib/systemd/system and /usr/lib/...
UNITDIR  ?= $(PREFIX)/lib/systemd/system
GO       ?= go
# Integration tests start real containers; bound the whole run.
TEST_TIMEOUT ?= 12m

BINS := bin/lxcfs-fused bin/lxcfs-hook bin/lxcfs-hook-cli bin/lxcfs-runc bin/lxcfs-nri

.PHONY: all build deps test test-vm unit vet fuzz demo bench bench-go install uninstall clean

all: build

# The hook runs on every container start, so its start-up counts:
# urfave_cli_no_docs leaves out urfave/cli's manual page support, whose
# Markdown library's initialisation cost 0.6 ms (make install prints the
# manual page with go run instead), and CGO_ENABLED=0 links statically,
# sparing the dynamic loader and libc another 0.7 ms (nothing here needs
# cgo; the net package, which the journal logger pulls in, is what made
# the binaries dynamic).
BUILD_TAGS ?= urfave_cli_no_docs
BUILD_ENV  ?= CGO_ENABLED=0
# What --version prints, the logs and `lxcfs-fused status` show. A plain
# `go build` falls back to the commit the toolchain stamps (pkg/version).
VERSION    ?= $(shell git describe --always --dirty 2>/dev/null || echo unknown)
LDFLAGS    ?= -X github.com/lxcfs-oci/lxcfs-oci/pkg/version.Version=$(VERSION)

build:
	$(BUILD_ENV) $(GO) build -tags '$(BUILD_TAGS)' -ldflags '$(LDFLAGS)' -o bin/lxcfs-fused ./cmd/lxcfs-fused
	$(BUILD_ENV) $(GO) build -tags '$(BUILD_TAGS)' -ldflags '$(LDFLAGS)' -o bin/lxcfs-hook ./cmd/lxcfs-hook
	$(BUILD_ENV) $(GO) build -tags '$(BUILD_TAGS)' -ldflags '$(LDFLAGS)' -o bin/lxcfs-hook-cli ./cmd/lxcfs-hook-cli
	$(BUILD_ENV) $(GO) build -tags '$(BUILD_TAGS)' -ldflags '$(LDFLAGS)' -o bin/lxcfs-runc ./cmd/lxcfs-runc
	$(BUILD_ENV) $(GO) build -tags '$(BUILD_TAGS)' -ldflags '$(LDFLAGS)' -o bin/lxcfs-nri ./cmd/lxcfs-nri

# Debian packages the tests and the demo need, installed when absent.
deps:
	./scripts/install-deps.sh

vet:
	@test -z "$$(gofmt -l cmd pkg integration)" || { echo "gofmt needed:"; gofmt -l cmd pkg integration; exit 1; }
	$(GO) vet ./...

# Everything: unit tests, fuzz seed corpora, and (as root) the integration
# tests against FUSE, cgroups, runc, podman, containerd and Docker; then a
# short fuzzing run of every parser that takes outside input.
test: deps vet
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...
	$(MAKE) --no-print-directory fuzz

# Each fuzz target for FUZZTIME (go test -fuzz takes one target at a time):
# a count of inputs, not a duration. With a duration, Go 1.26's fuzz
# coordinator can report "context deadline exceeded" as a failure when the
# time runs out on a loaded machine (golang/go#75804, fixed in Go 1.27), and
# how much gets fuzzed would depend on the machine's speed.
FUZZTIME ?= 2000x
FUZZ_PKGS := ./pkg/view ./pkg/cgroup ./pkg/hook ./pkg/supervise ./pkg/mountns
fuzz:
	@for pkg in $(FUZZ_PKGS); do \
		for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "fuzz $$pkg $$target ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) $$pkg >/tmp/lxcfs-oci-fuzz.log 2>&1 || \
				{ cat /tmp/lxcfs-oci-fuzz.log; exit 1; }; \
		done; \
	done

# The integration tests that depend on the kernel (views, hook with runc and
# crun, podman, sysinfo, load, reliability) on Debian 12's 6.1 and its
# backports' 6.12 kernel with pure cgroup v2, each booted under qemu with
# this machine's root filesystem (scripts/vm/test-vm.sh; as root). Prints a
# table per kernel. VM_KERNELS=6.1 boots one; VM_GROUPS picks groups.
test-vm:
	./scripts/vm/test-vm.sh

# Unit tests only: no root, no packages.
unit:
	$(GO) test -count=1 ./pkg/...

demo: build
	./scripts/install-deps.sh --minimal
	BIN_DIR=$(CURDIR)/bin bash scripts/demo.sh

# Side-by-side benchmark against LXCFS (as root; installs lxcfs when absent):
# read throughput, latency and daemon CPU per file, 10-500 containers, and the
# hook's start-up cost, printed as ratio tables. About 6 minutes; pass
# BENCH_ARGS=--quick for about 2, or any lxcfs-bench flag (-h lists them).
BENCH_ARGS ?=
bench: build
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/lxcfs-bench ./cmd/lxcfs-bench
	./bin/lxcfs-bench --fused bin/lxcfs-fused $(BENCH_ARGS)

# Go micro-benchmarks (render, cgroup reads, caller resolution) with allocations.
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./pkg/...

# Everything install writes, so uninstall removes exactly that. lxcfs-hook
# hands every command line but the delegated create-runtime to
# lxcfs-hook-cli beside it; lxcfs-runc is the runtime wrapper for Docker and
# containerd (a link to lxcfs-hook before, removed first: install would
# write through it).
INSTALLED := $(BINDIR)/lxcfs-fused $(BINDIR)/lxcfs-hook $(BINDIR)/lxcfs-hook-cli $(BINDIR)/lxcfs-runc $(BINDIR)/lxcfs-nri \
	$(HOOKSDIR)/lxcfs.json $(UNITDIR)/lxcfs-fused.service $(MANDIR)/man8/lxcfs-hook.8

install: build
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(HOOKSDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(MANDIR)/man8
	rm -f $(DESTDIR)$(BINDIR)/lxcfs-runc
	install -m 0755 bin/lxcfs-fused bin/lxcfs-hook bin/lxcfs-hook-cli bin/lxcfs-runc bin/lxcfs-nri $(DESTDIR)$(BINDIR)/
	sed 's|/usr/local/bin/lxcfs-hook|$(BINDIR)/lxcfs-hook|' hooks.d/lxcfs.json > $(DESTDIR)$(HOOKSDIR)/lxcfs.json
	chmod 0644 $(DESTDIR)$(HOOKSDIR)/lxcfs.json
	sed 's|@BINDIR@|$(BINDIR)|g' deploy/systemd/lxcfs-fused.service > $(DESTDIR)$(UNITDIR)/lxcfs-fused.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/lxcfs-fused.service
	$(GO) run ./cmd/lxcfs-hook-cli man > $(DESTDIR)$(MANDIR)/man8/lxcfs-hook.8
	chmod 0644 $(DESTDIR)$(MANDIR)/man8/lxcfs-hook.8
	@echo "installed; next: systemctl daemon-reload && systemctl enable --now lxcfs-fused," \
		"then lxcfs-hook configure docker|containerd|podman|crio (see docs/engines.md)"

# Directories are left: they may hold other packages' files.
uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))

clean:
	rm -rf bin
