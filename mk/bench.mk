# Measurements of this machine: training steps against the CPU's floor, translation speed, the
# memory of tokenize and the input pipeline, how long make test takes. Included by the Makefile.

.PHONY: bench bench-transformer membench timings

# Training steps against the CPU's arithmetic floor, and translation speed: reports/bench.{json,md}
BENCH_DIR ?= reports
BENCH_STEPS ?= 50
BENCH_BATCH1 ?= 1000
# Other exports timed for translation in the same run, from the runs folder BENCH_MODELS_DIR: with
# BENCH_MODELS="best distilled-gru_luong", the best ensemble and a student of the converge runs
# (make best, make distill) beside the variants of PRESET. Made if missing when BENCH_MODELS_DIR is
# this preset's RUNS_DIR (make bench PRESET=converge).
BENCH_MODELS ?=
BENCH_MODELS_DIR ?= runs/$(CORPUS_PREFIX)$(PAIR)-converge
## every variant's training steps against the CPU's floor, and translation speed
bench: $(foreach v,$(VARIANTS),$(RUNS_DIR)/$(v)/$(EXPORTED)) $(foreach m,$(BENCH_MODELS),$(BENCH_MODELS_DIR)/$(m)/$(EXPORTED))
	$(PIPELINE) bench --pair $(PAIR) --preset $(PRESET) --variants $(VARIANTS) --data-dir $(TFDS_DIR) \
		--tokenizer $(TOKENIZER) --runs-dir $(RUNS_DIR) --out-dir $(BENCH_DIR) \
		--steps $(BENCH_STEPS) --batch1-sentences $(BENCH_BATCH1) \
		$(if $(BENCH_MODELS),--models $(BENCH_MODELS) --models-dir $(BENCH_MODELS_DIR))

# The Transformer beside gru_bahdanau on the converge models, in one bench run (the converge runs
# exported): reports/de-en/converge/bench/bench.{json,md}, copied into docs/performance.md.
## make bench of the converge Transformer beside gru_bahdanau
bench-transformer:
	$(MAKE) bench PRESET=converge VARIANTS="gru_bahdanau transformer" BENCH_DIR=reports/de-en/converge/bench

# Peak memory (RSS, one process per measurement) and time of the tokenize stage and of one pass of
# the training input pipeline, on a synthetic corpus of 100k and of 1M pairs generated under
# $(DATA_DIR)/membench (not in git): reports/memory.{json,md}
MEMBENCH_SIZES ?= 100000 1000000
## peak memory and time of tokenize and the input pipeline, 100k and 1M synthetic pairs
membench: $(INSTALLED)
	$(PIPELINE) membench --sizes $(MEMBENCH_SIZES) --data-dir $(DATA_DIR)/membench --out-dir reports

# How long the README's commands take here, with the machine's ceiling and processor, one row per
# command and kind of machine in reports/timings.{json,md}: make test, and make all (the quick run
# of every variant) in folders of its own under $(TIMINGS_DIR), removed first, so that what this
# checkout has trained already does not shorten it (the prepared corpus, data/tfds, is shared).
# TIMED= picks the commands.
TIMINGS_DIR ?= runs/timings
TIMED ?= test all
TIMED_ALL = $(MAKE) --no-print-directory all RUNS_DIR=$(TIMINGS_DIR)/runs SPM_DIR=$(TIMINGS_DIR)/spm \
	SAVED_DIR=$(TIMINGS_DIR)/saved_models REPORTS_DIR=$(TIMINGS_DIR)/reports
## make test and make all (TIMED=) timed on this machine, with its ceiling and processor, for the README
timings: $(INSTALLED)
	$(if $(filter test,$(TIMED)),$(PIPELINE) timings --label "make test" -- $(MAKE) --no-print-directory test)
	$(if $(filter all,$(TIMED)),rm -rf $(TIMINGS_DIR) && $(PIPELINE) timings --label "make all" -- $(TIMED_ALL))
