# The exported models over HTTP (TensorFlow Serving's REST API), the server under load, and its
# page in a browser. Included by the Makefile; servebench writes beside the bench, in $(BENCH_DIR).

.PHONY: serve servebench screenshot

# Serve every exported model under $(SAVED_DIR) (or SERVE_MODELS) over HTTP, in TensorFlow Serving's
# REST API, with the page at http://127.0.0.1:8501/; a new version exported meanwhile is picked up.
SERVE_PORT ?= 8501
SERVE_HOST ?= 127.0.0.1
SERVE_MODELS ?=
## the exported models over HTTP (TensorFlow Serving's REST API), a page at :8501/
serve: $(INSTALLED)
	$(PIPELINE) serve --model-dir $(SAVED_DIR) --host $(SERVE_HOST) --port $(SERVE_PORT) \
		$(if $(SERVE_MODELS),--models $(SERVE_MODELS))

# The server under load: 1, 8 and 32 concurrent clients on localhost, each sending test sentences
# to $(VARIANT)'s export: requests/s, latency, errors and peak memory in reports/serve.{json,md}
SERVEBENCH_SECONDS ?= 20
## the server under 1, 8 and 32 concurrent clients: requests/s, latency, memory
servebench: $(RUNS_DIR)/$(VARIANT)/$(EXPORTED)
	$(PIPELINE) servebench --pair $(PAIR) --model-dir $(SAVED_DIR) --model $(CORPUS_PREFIX)$(VARIANT)$(PAIR_SUFFIX) \
		--data-dir $(TFDS_DIR) --seconds $(SERVEBENCH_SECONDS) --out-dir $(BENCH_DIR)

# The page in headless Chromium, with `make serve` running: a sentence typed and translated by the
# served models, saved as reports/page.png (Debian's chromium and chromium-driver).
## the page in headless Chromium, with make serve running: reports/page.png
screenshot: $(INSTALLED)
	$(PYTHON) tests/page_driver.py --port $(SERVE_PORT) --out reports/page.png
