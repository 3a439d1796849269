# The pipeline's stages, each keyed on the files it writes: a second `make all` redoes nothing.
# `make help` lists every target. The variables below choose what they make:
#   make all PRESET=converge     every variant trained to its best validation BLEU
#   make evaluate PRESET=full    the best gru_bahdanau;  make evaluate VARIANT=lstm PAIR=en-de
#   make evaluate CORPUS=ted_hrlr_translate/pt_to_en PAIR=pt-en   any TFDS translation dataset
#   make report PRESET=converge VARIANTS="gru lstm"   a subset of the committed report folders
# The experiments, bench, serving, README and development targets are in mk/*.mk, included below.

BOOTSTRAP_PYTHON ?= python3
# The names of the files in a run, report and comparison folder, from pipeline/layout.py
# (SUMMARY := train.json, ...). It imports nothing, so the system's Python reads it before the
# venv exists. $(shell) joins its lines with spaces: they cross as |-separated and are split here.
define newline


endef
$(eval $(subst |,$(newline),$(shell $(BOOTSTRAP_PYTHON) -m pipeline.layout | tr '\n' '|')))
ifndef SUMMARY
$(error $(BOOTSTRAP_PYTHON) -m pipeline.layout printed no file names: run make in the repository, or make -C it)
endif

CORPUS ?= multi30k
PAIR ?= de-en
VARIANTS ?= rnn lstm gru lstm_bahdanau gru_bahdanau gru_luong transformer
VARIANT ?= gru_bahdanau
PRESET ?= quick

VENV ?= .venv
PYTHON ?= $(VENV)/bin/python
INSTALLED ?= $(VENV)/.installed

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
# saved_models/gru_bahdanau_converge for de-en, saved_models/gru_bahdanau_converge_fr_en for fr-en:
# one name per model, so the quick and converge models of a variant are two servables, never two
# versions of one (the newer served, whichever is better). `best` and `best_en_de` are kept for the
# ensemble. $(call MODEL_NAME,gru) is gru's; the ids-only twin is the same name with -ids.
PAIR_SUFFIX = $(if $(filter-out de-en,$(PAIR)),_$(subst -,_,$(PAIR)))
MODEL_NAME = $(CORPUS_PREFIX)$(1)_$(PRESET)$(PAIR_SUFFIX)

PIPELINE = $(PYTHON) -m pipeline
# A catalogue dataset's folder depends on its version, which only TFDS knows: the data stage
# records where it prepared it.
DATASET = $(if $(CORPUS_PREFIX),$(DATA_DIR)/prepared/$(CORPUS_PREFIX)dataset.txt,\
	$(TFDS_DIR)/multi30k/$(PAIR)/1.0.0/dataset_info.json)
TOKENIZER = $(SPM_DIR)/$(TOKENIZER_FILE)
# The test split's sentences and references, which the report reads instead of TFDS.
SPLIT_FILE = $(DATA_DIR)/splits/$(CORPUS_PREFIX)$(PAIR)/test.json
COMPARE = $(COMPARE_DIR)/$(COMPARE_JSON)

.PHONY: all help install data tokenize split train export evaluate compare report test lint clean
.DELETE_ON_ERROR:
# Keep the runs' files that only pattern rules name (never deleted as intermediates). Not a blanket
# .SECONDARY: that makes every target secondary, and then a missing run does not force its retrain.
.PRECIOUS: $(RUNS_DIR)/%/$(SUMMARY) $(RUNS_DIR)/%/$(EXPORTED)

## data -> tokenize -> train, export, evaluate every variant -> compare (the default goal)
all: compare

## this list: every target and what it does, by the file that defines it
help:
	@awk '/^## / { doc = substr($$0, 4); next } \
		/^[a-zA-Z][-a-zA-Z0-9_]*:([^=]|$$)/ && doc != "" { \
			if (FILENAME != file) printf "%s%s\n", (file == "" ? "" : "\n"), (file = FILENAME); \
			sub(/:.*/, ""); printf "  %-18s %s\n", $$0, doc } \
		{ doc = "" }' $(MAKEFILE_LIST)

## the venv (VENV=.venv) with the package and its test tools, again when setup.cfg changes
install: $(INSTALLED)
$(INSTALLED): setup.cfg pyproject.toml
	test -x $(PYTHON) || $(BOOTSTRAP_PYTHON) -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e '.[test]'
	touch $@

## the corpus prepared as a TFDS dataset (CORPUS=, PAIR=)
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

## SentencePiece for the pair and preset, trained on both sides of the training split
tokenize: $(TOKENIZER)
$(TOKENIZER): $(DATASET)
	$(PIPELINE) tokenize --corpus $(CORPUS) --pair $(PAIR) --preset $(PRESET) --data-dir $(TFDS_DIR) --out-dir $(SPM_DIR)

## the test split as JSON under data/splits/, which the report reads
split: $(SPLIT_FILE)
$(SPLIT_FILE): $(DATASET)
	$(PIPELINE) split --corpus $(CORPUS) --pair $(PAIR) --split test --data-dir $(TFDS_DIR) --out $@

# One variant: make train|export|evaluate VARIANT=lstm
## train one variant (VARIANT=) to its run folder
train: $(RUNS_DIR)/$(VARIANT)/$(SUMMARY)
## export one variant's SavedModel as saved_models/<variant>_<preset> (SAVED_DIR=)
export: $(RUNS_DIR)/$(VARIANT)/$(EXPORTED)
# exported.txt is named beside test.json here and in $(COMPARE), so make never treats it as an
# intermediate file: on a fresh clone its absence forces train and export even where the
# reports (test.json) are committed and look newer than everything else.
## one variant scored on validation and test and analysed; prints its BLEU and chrF
evaluate: $(REPORTS_DIR)/$(VARIANT)/$(TEST_JSON) $(REPORTS_DIR)/$(VARIANT)/$(ANALYSIS) \
		$(RUNS_DIR)/$(VARIANT)/$(EXPORTED)
	@$(PYTHON) -c "import json; r = json.load(open('$<')); print(f\"BLEU {r['bleu']}  chrF {r['chrf']}  ({r['pair']} {r['split']}, $(VARIANT), $(PRESET), {r['decoding']})\")"

$(RUNS_DIR)/%/$(SUMMARY): $(TOKENIZER)
	$(PIPELINE) train --corpus $(CORPUS) --pair $(PAIR) --preset $(PRESET) --variant $* \
		--data-dir $(TFDS_DIR) --tokenizer $(TOKENIZER) --run-dir $(RUNS_DIR)/$*

$(RUNS_DIR)/%/$(EXPORTED): $(RUNS_DIR)/%/$(SUMMARY)
	$(PIPELINE) export --run-dir $(RUNS_DIR)/$* --out $(SAVED_DIR)/$(call MODEL_NAME,$*) --record $@

# Validation and test with the export's default decoding (beam 5), test also greedy; test.json last.
EVALUATE = $(PIPELINE) evaluate --corpus $(CORPUS) --pair $(PAIR) --preset $(PRESET) --data-dir $(TFDS_DIR)
$(REPORTS_DIR)/%/$(TEST_JSON): $(RUNS_DIR)/%/$(EXPORTED)
	$(EVALUATE) --model $$(cat $<) --split validation --out-dir $(REPORTS_DIR)/$*
	$(EVALUATE) --model $$(cat $<) --split test --beam-size 1 --out-dir $(REPORTS_DIR)/$*
	$(EVALUATE) --model $$(cat $<) --split test --out-dir $(REPORTS_DIR)/$*
	cd $(RUNS_DIR)/$* && cp $(RUN_FILES_COPIED) $(abspath $(REPORTS_DIR))/$*/

# The gradient-flow probe and the attention heatmaps' weights, from the trained weights: with
# them, a variant's report folder holds everything its row and figures need.
$(REPORTS_DIR)/%/$(ANALYSIS): $(RUNS_DIR)/%/$(EXPORTED)
	$(PIPELINE) analyse --run-dir $(RUNS_DIR)/$* --data-dir $(TFDS_DIR) --out-dir $(REPORTS_DIR)/$*

# Every variant, then the table and the figures that compare them.
REPORT = $(PIPELINE) report --corpus $(CORPUS) --pair $(PAIR) --preset $(PRESET) --variants $(VARIANTS) \
	--split-file $(SPLIT_FILE) --reports-dir $(REPORTS_DIR) --out-dir $(COMPARE_DIR) --baseline $(BASELINE)
## every variant (VARIANTS=) evaluated, then the table and figures comparing them
compare: $(COMPARE)
	@cat $(COMPARE_DIR)/$(COMPARE_MD)
$(COMPARE): $(SPLIT_FILE) $(foreach v,$(VARIANTS),$(REPORTS_DIR)/$(v)/$(TEST_JSON) \
		$(REPORTS_DIR)/$(v)/$(ANALYSIS) $(RUNS_DIR)/$(v)/$(EXPORTED))
	$(REPORT)

# The same table and figures from the report folders alone (committed, or made on other days and
# machines), training nothing: a missing variant is named, unless VARIANTS= leaves it out.
## the comparison again from the committed report folders, training nothing
report: $(SPLIT_FILE)
	$(REPORT)
	@cat $(COMPARE_DIR)/$(COMPARE_MD)

## the tests, the slow ones (training, the Make chain end to end) included
test: $(INSTALLED)
	$(PYTHON) -m pytest

## ruff's lint and format checks
lint: $(INSTALLED)
	$(PYTHON) -m ruff check pipeline tests
	$(PYTHON) -m ruff format --check pipeline tests

## remove the runs, prepared data, tokenizers and exports (not the reports)
clean:
	rm -rf runs $(DATA_DIR)/tfds $(DATA_DIR)/spm $(DATA_DIR)/raw $(DATA_DIR)/prepared $(DATA_DIR)/splits $(SAVED_DIR)/*/ .pytest_cache

include mk/experiments.mk mk/best.mk mk/bench.mk mk/serve.mk mk/docs.mk mk/dev.mk
