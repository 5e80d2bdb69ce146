# Steergate. `make run` serves the embedded default; `make test` runs every
# test. Both install what they need; downloads are cached outside the repo
# in $(CACHE).
SHELL := /bin/bash
CACHE ?= $(HOME)/.cache/steergate
GO ?= go
NODE_SDK_VERSION := 6.49.0
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
BIN := bin/steergate

export STEERGATE_NODE_MODULES := $(CACHE)/node/node_modules

.PHONY: run test bench lint build deps-test clean

build:
	$(GO) build -o $(BIN) ./cmd/steergate

run: build
	./$(BIN) serve --config configs/default.yaml

# The official OpenAI Node SDK, for the SDK compatibility test.
$(CACHE)/node/node_modules/openai/package.json:
	@command -v npm >/dev/null || (apt-get update -qq && apt-get install -y -qq nodejs npm)
	mkdir -p $(CACHE)/node
	npm install --no-audit --no-fund --silent --prefix $(CACHE)/node openai@$(NODE_SDK_VERSION)

deps-test: $(CACHE)/node/node_modules/openai/package.json

test: deps-test
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...

bench: build
	$(GO) run ./bench -out docs/benchmarks.md

lint:
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

clean:
	rm -rf bin
