# The two commands a newcomer needs are `make run` and `make test`.
GO        ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
BINARIES  := cloudctl clusterctl nodectl walrus ebs
export PATH := $(dir $(GO)):$(PATH)

.PHONY: all build deps run stop test unit e2e bench fuzz vet clean

all: build

deps:
	@scripts/install-deps.sh

build:
	@mkdir -p bin
	$(GO) build -o bin/ $(addprefix ./,$(BINARIES))

run: deps build
	@scripts/stack.sh start

stop:
	@scripts/stack.sh stop

test: deps vet unit e2e

vet:
	$(GO) vet ./...
	@unformatted=$$($(dir $(GO))gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt -l: $$unformatted"; exit 1; fi

unit:
	$(GO) test -count=1 ./...

# The end-to-end suite builds the binaries itself and drives them with real
# clients. Under CI=true a missing prerequisite fails instead of skipping.
e2e:
	$(GO) test -count=1 -tags e2e -timeout 20m ./test/e2e/...

bench: build
	$(GO) run ./bench/s3bench -out docs/benchmarks.md

fuzz:
	@scripts/fuzz.sh

clean:
	rm -rf bin
