# The exported models over HTTP (TensorFlow Serving's REST API), the server under load, and its
# page in a browser. Included by the Makefile; servebench writes beside the bench, in $(BENCH_DIR).

.PHONY: serve servebench screenshot

# Serve the models SERVE_MODELS names (default: every one under $(SAVED_DIR)) over HTTP, in TensorFlow
# Serving's REST API, with the page at http://127.0.0.1:8501/; a new version exported meanwhile is
# picked up. SERVE_FLAGS goes to the server as it is: SERVE_FLAGS="--deadline-ms 10000 --max-batch-size 32"
# (`nmt serve --help` lists them). Models are named <variant>_<preset>[_<src>_<tgt>]:
# make serve SERVE_MODELS="gru_bahdanau_quick gru_bahdanau_converge" serves both side by side.
SERVE_PORT ?= 8501
SERVE_HOST ?= 127.0.0.1
SERVE_MODELS ?=
SERVE_FLAGS ?=
## the exported models over HTTP (TensorFlow Serving's REST API), a page at :8501/
serve: $(INSTALLED)
	$(PIPELINE) serve --model-dir $(SAVED_DIR) --host $(SERVE_HOST) --port $(SERVE_PORT) \
		$(if $(SERVE_MODELS),--models $(SERVE_MODELS)) $(SERVE_FLAGS)

# The server under load: 1, 8 and 32 concurrent clients on localhost, each sending test sentences
# to $(VARIANT)'s export of $(PRESET), then the flood (one client's one-sentence requests beside
# 16 clients sending the heaviest requests): requests/s, latency, errors, the codes the flood got
# and peak memory in reports/serve.{json,md}
SERVEBENCH_SECONDS ?= 20
SERVEBENCH_FLOOD ?= 16
## the server under 1, 8 and 32 concurrent clients, then a flood: requests/s, latency, memory
servebench: $(RUNS_DIR)/$(VARIANT)/$(EXPORTED)
	$(PIPELINE) servebench --pair $(PAIR) --model-dir $(SAVED_DIR) --model $(call MODEL_NAME,$(VARIANT)) \
		--data-dir $(TFDS_DIR) --seconds $(SERVEBENCH_SECONDS) --flood-clients $(SERVEBENCH_FLOOD) \
		--out-dir $(BENCH_DIR)

# The page in headless Chromium, with `make serve` running: a sentence typed and translated by the
# served models, saved as reports/page.png (Debian's chromium and chromium-driver).
## the page in headless Chromium, with make serve running: reports/page.png
screenshot: $(INSTALLED)
	$(PYTHON) tests/page_driver.py --port $(SERVE_PORT) --out reports/page.png
