# The pipeline's stages, each keyed on the files it writes: a second `make all` redoes nothing.
#   make all                   data -> tokenize -> train, export, evaluate every variant -> compare (de-en, quick)
#   make all PRESET=converge   the comparison: every variant trained to its best validation BLEU
#   make evaluate PRESET=full  the best gru_bahdanau;  make evaluate VARIANT=lstm PAIR=en-de
#   make report PRESET=converge  the comparison again from the committed report folders (VARIANTS= a subset)
#   make seeds PRESET=converge gru_bahdanau with two more seeds: how much of a gap is noise
#   make tune | tune-transformer  the recipe's and the Transformer schedule's evidence, on validation
#   make bench | bench-transformer  training steps against the CPU's floor, translation speed
#   make evaluate CORPUS=ted_hrlr_translate/pt_to_en PAIR=pt-en   any TFDS translation dataset
#   make serve                 the exported models over HTTP (TensorFlow Serving's REST API), a page at :8501/
#   make servebench            the server under 1, 8 and 32 concurrent clients: requests/s, latency, memory
#   make membench              peak memory and time of tokenize and the input pipeline, 100k and 1M pairs
#   make mutate                mutation testing of checkpoints.py and files.py (not in make test)
#   make timings               make test timed on this machine, with its ceiling, for the README
#   make test | lint | clean

CORPUS ?= multi30k
PAIR ?= de-en
VARIANTS ?= rnn lstm gru lstm_bahdanau gru_bahdanau gru_luong transformer
VARIANT ?= gru_bahdanau
PRESET ?= quick

VENV ?= .venv
PYTHON ?= $(VENV)/bin/python
INSTALLED ?= $(VENV)/.installed
BOOTSTRAP_PYTHON ?= python3

DATA_DIR ?= data
SHARED_CORPUS ?= ../shared/data/multi30k
RAW_DIR ?= $(DATA_DIR)/raw/multi30k
TFDS_DIR ?= $(DATA_DIR)/tfds
# Multi30k's paths carry no corpus name; another corpus's carry its name as folders (data/spm/
# ted_hrlr_translate/pt_to_en/pt-en-quick), so no two corpora share a tokenizer, run or report.
CORPUS_PREFIX = $(if $(filter-out multi30k,$(CORPUS)),$(subst :,_,$(CORPUS))/)
SPM_DIR ?= $(DATA_DIR)/spm/$(CORPUS_PREFIX)$(PAIR)-$(PRESET)
RUNS_DIR ?= runs/$(CORPUS_PREFIX)$(PAIR)-$(PRESET)
SAVED_DIR ?= saved_models
REPORTS_DIR ?= reports/$(CORPUS_PREFIX)$(PAIR)/$(PRESET)
COMPARE_DIR ?= $(REPORTS_DIR)
BASELINE ?= gru_bahdanau
# saved_models/gru_bahdanau for de-en, saved_models/gru_bahdanau_fr_en for fr-en
PAIR_SUFFIX = $(if $(filter-out de-en,$(PAIR)),_$(subst -,_,$(PAIR)))

PIPELINE = $(PYTHON) -m pipeline
# A catalogue dataset's folder depends on its version, which only TFDS knows: the data stage
# records where it prepared it.
DATASET = $(if $(CORPUS_PREFIX),$(DATA_DIR)/prepared/$(CORPUS_PREFIX)dataset.txt,\
	$(TFDS_DIR)/multi30k/$(PAIR)/1.0.0/dataset_info.json)
TOKENIZER = $(SPM_DIR)/spm.model
COMPARE = $(COMPARE_DIR)/compare.json

.PHONY: all install data tokenize train export evaluate compare report seeds tune tune-transformer bench bench-transformer membench serve servebench screenshot readme test timings mutate lint clean
.DELETE_ON_ERROR:
# Keep the runs' files that only pattern rules name (never deleted as intermediates). Not a blanket
# .SECONDARY: that makes every target secondary, and then a missing run does not force its retrain.
.PRECIOUS: $(RUNS_DIR)/%/train.json $(RUNS_DIR)/%/exported.txt

all: compare

install: $(INSTALLED)
$(INSTALLED): setup.cfg pyproject.toml
	test -x $(PYTHON) || $(BOOTSTRAP_PYTHON) -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e '.[test]'
	touch $@

data: $(DATASET)
# Order-only: installing first, but a later reinstall (setup.cfg changed) leaves the data, and so
# every tokenizer, run and report after it, up to date.
$(DATASET): | $(INSTALLED)
ifeq ($(CORPUS),multi30k)
	@# Seed the local copy from the shared corpus when there is one; the builder downloads what is missing.
	@if [ -d $(SHARED_CORPUS) ]; then mkdir -p $(RAW_DIR) && cp -n $(SHARED_CORPUS)/*.gz $(RAW_DIR)/; fi
	$(PIPELINE) data --pair $(PAIR) --data-dir $(TFDS_DIR) --manual-dir $(RAW_DIR)
else
	$(PIPELINE) data --corpus $(CORPUS) --pair $(PAIR) --data-dir $(TFDS_DIR) --record $@
endif

tokenize: $(TOKENIZER)
$(TOKENIZER): $(DATASET)
	$(PIPELINE) tokenize --corpus $(CORPUS) --pair $(PAIR) --preset $(PRESET) --data-dir $(TFDS_DIR) --out-dir $(SPM_DIR)

# One variant: make train|export|evaluate VARIANT=lstm
train: $(RUNS_DIR)/$(VARIANT)/train.json
export: $(RUNS_DIR)/$(VARIANT)/exported.txt
# exported.txt is named beside test.json here and in $(COMPARE), so make never treats it as an
# intermediate file: on a fresh clone its absence forces train and export even where the
# reports (test.json) are committed and look newer than everything else.
evaluate: $(REPORTS_DIR)/$(VARIANT)/test.json $(REPORTS_DIR)/$(VARIANT)/analysis.json \
		$(RUNS_DIR)/$(VARIANT)/exported.txt
	@$(PYTHON) -c "import json; r = json.load(open('$<')); print(f\"BLEU {r['bleu']}  chrF {r['chrf']}  ({r['pair']} {r['split']}, $(VARIANT), $(PRESET), {r['decoding']})\")"

$(RUNS_DIR)/%/train.json: $(TOKENIZER)
	$(PIPELINE) train --corpus $(CORPUS) --pair $(PAIR) --preset $(PRESET) --variant $* \
		--data-dir $(TFDS_DIR) --tokenizer $(TOKENIZER) --run-dir $(RUNS_DIR)/$*

$(RUNS_DIR)/%/exported.txt: $(RUNS_DIR)/%/train.json
	$(PIPELINE) export --run-dir $(RUNS_DIR)/$* --out $(SAVED_DIR)/$(CORPUS_PREFIX)$*$(PAIR_SUFFIX) --record $@

# Validation and test with the export's default decoding (beam 5), test also greedy; test.json last.
EVALUATE = $(PIPELINE) evaluate --corpus $(CORPUS) --pair $(PAIR) --preset $(PRESET) --data-dir $(TFDS_DIR)
$(REPORTS_DIR)/%/test.json: $(RUNS_DIR)/%/exported.txt
	$(EVALUATE) --model $$(cat $<) --split validation --out-dir $(REPORTS_DIR)/$*
	$(EVALUATE) --model $$(cat $<) --split test --beam-size 1 --out-dir $(REPORTS_DIR)/$*
	$(EVALUATE) --model $$(cat $<) --split test --out-dir $(REPORTS_DIR)/$*
	cd $(RUNS_DIR)/$* && cp log.csv training.png train.json config.json decoding.json $(abspath $(REPORTS_DIR))/$*/

# The gradient-flow probe and the attention heatmaps' weights, from the trained weights: with
# them, a variant's report folder holds everything its row and figures need.
$(REPORTS_DIR)/%/analysis.json: $(RUNS_DIR)/%/exported.txt
	$(PIPELINE) analyse --run-dir $(RUNS_DIR)/$* --data-dir $(TFDS_DIR) --out-dir $(REPORTS_DIR)/$*

# Every variant, then the table and the figures that compare them.
REPORT = $(PIPELINE) report --corpus $(CORPUS) --pair $(PAIR) --preset $(PRESET) --variants $(VARIANTS) \
	--data-dir $(TFDS_DIR) --reports-dir $(REPORTS_DIR) --out-dir $(COMPARE_DIR) --baseline $(BASELINE)
compare: $(COMPARE)
	@cat $(COMPARE_DIR)/compare.md
$(COMPARE): $(foreach v,$(VARIANTS),$(REPORTS_DIR)/$(v)/test.json $(REPORTS_DIR)/$(v)/analysis.json \
		$(RUNS_DIR)/$(v)/exported.txt)
	$(REPORT)

# The same table and figures from the report folders alone (committed, or made on other days and
# machines), training nothing: a missing variant is named, unless VARIANTS= leaves it out.
report: $(DATASET)
	$(REPORT)
	@cat $(COMPARE_DIR)/compare.md

# The same variant and preset with other seeds (initialisation, dropout, batch order): mean and spread.
SEEDS ?= 1 2
SEED_VARIANT ?= gru_bahdanau
SEED_RUNS = $(SEED_VARIANT) $(foreach s,$(SEEDS),$(SEED_VARIANT)-seed$(s))
seeds: $(REPORTS_DIR)/seeds.json
	@cat $(REPORTS_DIR)/seeds.md
.PRECIOUS: $(RUNS_DIR)/$(SEED_VARIANT)-seed%/train.json
$(RUNS_DIR)/$(SEED_VARIANT)-seed%/train.json: $(TOKENIZER)
	$(PIPELINE) train --corpus $(CORPUS) --pair $(PAIR) --preset $(PRESET) --variant $(SEED_VARIANT) --set train.seed=$* \
		--set data.seed=$* --data-dir $(TFDS_DIR) --tokenizer $(TOKENIZER) --run-dir $(@D)
$(REPORTS_DIR)/seeds.json: $(foreach r,$(SEED_RUNS),$(REPORTS_DIR)/$(r)/test.json $(RUNS_DIR)/$(r)/exported.txt)
	$(PIPELINE) seeds --runs $(SEED_RUNS) --reports-dir $(REPORTS_DIR) --out-dir $(REPORTS_DIR)

# The recipe's evidence: gru_bahdanau 256/256 on de-en with one setting changed at a time, compared
# on the validation split (reports/de-en/tuning/tuning.md). Runs named A-E: the defaults (quick) and
# at most 12 epochs, the rate halved on plateaus; runs named R, F, G and T: the converge schedule itself
# (7 epochs, halved after every epoch from the 5th), with the guard off.
TUNE_DIR ?= runs/tune
TUNE_OUT ?= reports/de-en/tuning
TUNE_BASE_quick = --set train.epochs=12 --set train.patience=3 --set train.plateau_patience=1 --set train.average=3 \
	--set "train.length_penalties=[0.0,0.4,0.6,0.8,1.0,1.2]" --set train.time_budget_minutes=None
TUNE_BASE_converge = --set train.time_budget_minutes=None
TUNE_A_d01 = model.dropout=0.1
TUNE_B_d03 = model.dropout=0.3
TUNE_C_d03_ls = model.dropout=0.3 train.label_smoothing=0.1
TUNE_D_d03_ls_tie = model.dropout=0.3 train.label_smoothing=0.1 model.tie_embeddings=true
TUNE_E_d03_decay5 = model.dropout=0.3 train.decay_from=5
TUNE_R_converge = model.dropout=0.3
TUNE_F_converge_d01 = model.dropout=0.1
TUNE_G_converge_nols = model.dropout=0.3 train.label_smoothing=0.0
TUNE_T_converge_tie = model.tie_embeddings=true
TUNE_RUNS ?= A_d01 B_d03 C_d03_ls D_d03_ls_tie E_d03_decay5 R_converge F_converge_d01 G_converge_nols \
	T_converge_tie
TUNE_ON_CONVERGE = R_converge F_converge_d01 G_converge_nols T_converge_tie transformer_%
# The Transformer's schedule (a warmup to a peak rate, then 1/sqrt(step) decay) and shape, on
# converge's budget (7 epochs): peaks of 1e-3 and 5e-4 beside the 2e-3 of the converge run itself,
# read from its committed report folder; a deep encoder with a shallow decoder (6 layers and 1),
# and Transformer-tiny (model size 128, 4 layers each side, feed-forward 512), at 2e-3 (make
# tune-transformer: reports/de-en/tuning/transformer/tuning.md).
TUNE_transformer_peak1e3 = train.learning_rate=1e-3
TUNE_transformer_peak5e4 = train.learning_rate=5e-4
TUNE_transformer_6x1 = model.layers=6 model.decoder_layers=1
TUNE_transformer_tiny = model.embedding_dim=128 model.ff_dim=512 model.layers=4 model.decoder_layers=4
TRANSFORMER_TUNE_RUNS ?= transformer_peak1e3 transformer_peak5e4 transformer_6x1 transformer_tiny
TUNE_WITH ?=
tune_preset = $(if $(filter $(TUNE_ON_CONVERGE),$(1)),converge,quick)
tune_variant = $(if $(filter transformer_%,$(1)),transformer,gru_bahdanau)
tune: $(TUNE_OUT)/tuning.json
	@cat $(TUNE_OUT)/tuning.md
tune-transformer:
	$(MAKE) tune PRESET=converge TUNE_RUNS="$(TRANSFORMER_TUNE_RUNS)" TUNE_OUT=$(TUNE_OUT)/transformer \
		TUNE_WITH=reports/de-en/converge/transformer
$(TUNE_DIR)/%/train.json: $(TOKENIZER)
	$(PIPELINE) train --pair $(PAIR) --preset $(call tune_preset,$*) --variant $(call tune_variant,$*) \
		--data-dir $(TFDS_DIR) --tokenizer $(TOKENIZER) --run-dir $(@D) $(TUNE_BASE_$(call tune_preset,$*)) \
		$(foreach s,$(TUNE_$*),--set $(s))
$(TUNE_OUT)/tuning.json: $(foreach r,$(TUNE_RUNS),$(TUNE_DIR)/$(r)/train.json) $(foreach r,$(TUNE_WITH),$(r)/train.json)
	$(PIPELINE) tuning --runs $(TUNE_WITH) $(foreach r,$(TUNE_RUNS),$(TUNE_DIR)/$(r)) --out-dir $(TUNE_OUT)

# Training steps against the CPU's arithmetic floor, and translation speed: reports/bench.{json,md}
BENCH_DIR ?= reports
BENCH_STEPS ?= 50
BENCH_BATCH1 ?= 1000
bench: $(foreach v,$(VARIANTS),$(RUNS_DIR)/$(v)/exported.txt)
	$(PIPELINE) bench --pair $(PAIR) --preset $(PRESET) --variants $(VARIANTS) --data-dir $(TFDS_DIR) \
		--tokenizer $(TOKENIZER) --runs-dir $(RUNS_DIR) --out-dir $(BENCH_DIR) \
		--steps $(BENCH_STEPS) --batch1-sentences $(BENCH_BATCH1)

# The Transformer beside gru_bahdanau on the converge models, in one bench run (the converge runs
# exported): reports/de-en/converge/bench/bench.{json,md}, copied into docs/performance.md.
bench-transformer:
	$(MAKE) bench PRESET=converge VARIANTS="gru_bahdanau transformer" BENCH_DIR=reports/de-en/converge/bench

# Serve every exported model under $(SAVED_DIR) (or SERVE_MODELS) over HTTP, in TensorFlow Serving's
# REST API, with the page at http://127.0.0.1:8501/; a new version exported meanwhile is picked up.
SERVE_PORT ?= 8501
SERVE_HOST ?= 127.0.0.1
SERVE_MODELS ?=
serve: $(INSTALLED)
	$(PIPELINE) serve --model-dir $(SAVED_DIR) --host $(SERVE_HOST) --port $(SERVE_PORT) \
		$(if $(SERVE_MODELS),--models $(SERVE_MODELS))

# The server under load: 1, 8 and 32 concurrent clients on localhost, each sending test sentences
# to $(VARIANT)'s export: requests/s, latency, errors and peak memory in reports/serve.{json,md}
SERVEBENCH_SECONDS ?= 20
servebench: $(RUNS_DIR)/$(VARIANT)/exported.txt
	$(PIPELINE) servebench --pair $(PAIR) --model-dir $(SAVED_DIR) --model $(CORPUS_PREFIX)$(VARIANT)$(PAIR_SUFFIX) \
		--data-dir $(TFDS_DIR) --seconds $(SERVEBENCH_SECONDS) --out-dir $(BENCH_DIR)

# The page in headless Chromium, with `make serve` running: a sentence typed and translated by the
# served models, saved as reports/page.png (Debian's chromium and chromium-driver).
screenshot: $(INSTALLED)
	$(PYTHON) tests/page_driver.py --port $(SERVE_PORT) --out reports/page.png

# Peak memory (RSS, one process per measurement) and time of the tokenize stage and of one pass of
# the training input pipeline, on a synthetic corpus of 100k and of 1M pairs generated under
# $(DATA_DIR)/membench (not in git): reports/memory.{json,md}
MEMBENCH_SIZES ?= 100000 1000000
membench: $(INSTALLED)
	$(PYTHON) -m pipeline.membench --sizes $(MEMBENCH_SIZES) --data-dir $(DATA_DIR)/membench --out-dir reports

# Copy every table that has been produced into the file that holds its markers (README.md or a
# page of docs/), each between its markers. An entry is marker:source:destination; a source not
# made yet is skipped, and a destination without the marker is an error.
README_TABLES = timings:reports/timings.md:README.md \
	converge:reports/de-en/converge/summary.md:README.md seeds:reports/de-en/converge/seeds.md:README.md \
	lesson:reports/de-en/converge/lesson.md:README.md \
	serve-exchange:$(BENCH_DIR)/serve-exchange.md:README.md \
	full-de-en:reports/de-en/full/compare.md:docs/results.md full-en-de:reports/en-de/full/compare.md:docs/results.md \
	tuning:reports/de-en/tuning/tuning.md:docs/results.md \
	tuning-transformer:reports/de-en/tuning/transformer/tuning.md:docs/results.md quick:reports/de-en/quick/compare.md:docs/results.md \
	bench:$(BENCH_DIR)/bench.md:docs/performance.md bench-transformer:reports/de-en/converge/bench/bench.md:docs/performance.md \
	memory:reports/memory.md:docs/performance.md \
	serve:$(BENCH_DIR)/serve.md:docs/serving.md
# The converge table's reading against the lesson, written from its numbers and the seed spread.
LESSON_DIR = reports/de-en/converge
readme: $(INSTALLED)
	@$(PYTHON) -m pipeline.timings --table --out-dir reports >/dev/null
	@test ! -f $(LESSON_DIR)/compare.json || $(PIPELINE) lesson --compare $(LESSON_DIR)/compare.json \
		--seeds $(LESSON_DIR)/seeds.json --out $(LESSON_DIR)/lesson.md
	@$(foreach t,$(README_TABLES),test ! -f $(word 2,$(subst :, ,$(t))) || \
		$(PIPELINE) readme --compare $(word 2,$(subst :, ,$(t))) --marker $(word 1,$(subst :, ,$(t))) \
		--readme $(word 3,$(subst :, ,$(t))) || exit 1;)

test: $(INSTALLED)
	$(PYTHON) -m pytest

# How long the README's commands take here, with the machine's ceiling: make test timed (one row per
# kind of machine in reports/timings.{json,md}), make all summed from the committed quick reports.
timings: $(INSTALLED)
	$(PYTHON) -m pipeline.timings --label "make test" -- $(MAKE) --no-print-directory test

# Mutation testing, not part of make test: cosmic-ray changes one operator at a time in the
# modules below, in place (leave the checkout alone meanwhile), and runs their fast in-process
# tests (tests/mutation/*.toml); reports/mutation.md counts the mutants killed and says why each
# survivor lives (tests/mutation/survivors.toml).
MUTATE_MODULES ?= files checkpoints
MUTATE_DIR = runs/mutation
mutate: $(INSTALLED)
	$(PYTHON) -m pip install --quiet -e '.[test,mutate]'
	rm -rf $(MUTATE_DIR) && mkdir -p $(MUTATE_DIR)
	for m in $(MUTATE_MODULES); do \
		$(VENV)/bin/cosmic-ray init tests/mutation/$$m.toml $(MUTATE_DIR)/$$m.sqlite && \
		$(VENV)/bin/cr-filter-operators $(MUTATE_DIR)/$$m.sqlite tests/mutation/$$m.toml && \
		PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/cosmic-ray exec tests/mutation/$$m.toml \
			$(MUTATE_DIR)/$$m.sqlite || exit 1; \
	done
	$(PYTHON) tests/mutation/summary.py reports/mutation.md $(foreach m,$(MUTATE_MODULES),$(MUTATE_DIR)/$(m).sqlite)

lint: $(INSTALLED)
	$(PYTHON) -m ruff check pipeline tests
	$(PYTHON) -m ruff format --check pipeline tests

clean:
	rm -rf runs $(DATA_DIR)/tfds $(DATA_DIR)/spm $(DATA_DIR)/raw $(DATA_DIR)/prepared $(SAVED_DIR)/*/ .pytest_cache
