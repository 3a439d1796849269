# The pipeline's stages, each keyed on the files it writes: a second `make all` redoes nothing.
#   make all                      data -> tokenize -> train -> export -> evaluate (de-en, gru_bahdanau, quick)
#   make all PAIR=fr-en PRESET=full VARIANT=gru_bahdanau
#   make test | lint | clean

PAIR ?= de-en
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
SPM_DIR ?= $(DATA_DIR)/spm/$(PAIR)-$(PRESET)
RUN_DIR ?= runs/$(PAIR)-$(PRESET)/$(VARIANT)
SAVED_DIR ?= saved_models
# saved_models/gru_bahdanau for de-en, saved_models/gru_bahdanau_fr_en for fr-en
MODEL_NAME ?= $(VARIANT)$(if $(filter-out de-en,$(PAIR)),_$(subst -,_,$(PAIR)))
REPORT_DIR ?= reports/$(PAIR)/$(PRESET)/$(VARIANT)

PIPELINE = $(PYTHON) -m pipeline
DATASET = $(TFDS_DIR)/multi30k/$(PAIR)/1.0.0/dataset_info.json
TOKENIZER = $(SPM_DIR)/spm.model
TRAINED = $(RUN_DIR)/train.json
EXPORTED = $(RUN_DIR)/exported.txt
REPORT = $(REPORT_DIR)/test.json

.PHONY: all install data tokenize train export evaluate test lint clean
.DELETE_ON_ERROR:

all: evaluate

install: $(INSTALLED)
$(INSTALLED): setup.cfg pyproject.toml
	test -x $(PYTHON) || $(BOOTSTRAP_PYTHON) -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e '.[test]'
	touch $@

data: $(DATASET)
$(DATASET): $(INSTALLED)
	@# Seed the local copy from the shared corpus when there is one; the builder downloads what is missing.
	@if [ -d $(SHARED_CORPUS) ]; then mkdir -p $(RAW_DIR) && cp -n $(SHARED_CORPUS)/*.gz $(RAW_DIR)/; fi
	$(PIPELINE) data --pair $(PAIR) --data-dir $(TFDS_DIR) --manual-dir $(RAW_DIR)

tokenize: $(TOKENIZER)
$(TOKENIZER): $(DATASET)
	$(PIPELINE) tokenize --pair $(PAIR) --preset $(PRESET) --data-dir $(TFDS_DIR) --out-dir $(SPM_DIR)

train: $(TRAINED)
$(TRAINED): $(TOKENIZER)
	$(PIPELINE) train --pair $(PAIR) --preset $(PRESET) --variant $(VARIANT) \
		--data-dir $(TFDS_DIR) --tokenizer $(TOKENIZER) --run-dir $(RUN_DIR)

export: $(EXPORTED)
$(EXPORTED): $(TRAINED)
	$(PIPELINE) export --run-dir $(RUN_DIR) --out $(SAVED_DIR)/$(MODEL_NAME) --record $@

evaluate: $(REPORT)
	@$(PYTHON) -c "import json; r = json.load(open('$(REPORT)')); print(f\"BLEU {r['bleu']}  chrF {r['chrf']}  ({r['pair']} {r['split']}, $(VARIANT), $(PRESET))\")"
$(REPORT): $(EXPORTED)
	$(PIPELINE) evaluate --pair $(PAIR) --preset $(PRESET) --model $$(cat $(EXPORTED)) \
		--data-dir $(TFDS_DIR) --out-dir $(REPORT_DIR)
	cp $(RUN_DIR)/log.csv $(RUN_DIR)/training.png $(RUN_DIR)/train.json $(REPORT_DIR)/

test: $(INSTALLED)
	$(PYTHON) -m pytest

lint: $(INSTALLED)
	$(PYTHON) -m ruff check pipeline tests
	$(PYTHON) -m ruff format --check pipeline tests

clean:
	rm -rf runs $(DATA_DIR)/tfds $(DATA_DIR)/spm $(DATA_DIR)/raw $(SAVED_DIR)/*/ .pytest_cache
