# Experiments beside the comparison: seeds (how much of a gap is noise) and the tuning runs
# (the recipe's evidence). Included by the Makefile, whose variables and rules these use.

.PHONY: seeds tune tune-transformer

# The same variant and preset with other seeds (initialisation, dropout, batch order): mean and spread.
SEEDS ?= 1 2
SEED_VARIANT ?= gru_bahdanau
SEED_RUNS = $(SEED_VARIANT) $(foreach s,$(SEEDS),$(SEED_VARIANT)-seed$(s))
## gru_bahdanau with seeds 1 and 2 (SEEDS=): mean and spread, how much of a gap is noise
seeds: $(REPORTS_DIR)/$(SEEDS_JSON)
	@cat $(REPORTS_DIR)/$(SEEDS_MD)
.PRECIOUS: $(RUNS_DIR)/$(SEED_VARIANT)-seed%/$(SUMMARY)
$(RUNS_DIR)/$(SEED_VARIANT)-seed%/$(SUMMARY): $(TOKENIZER)
	$(PIPELINE) train --corpus $(CORPUS) --pair $(PAIR) --preset $(PRESET) --variant $(SEED_VARIANT) --set train.seed=$* \
		--set data.seed=$* --data-dir $(TFDS_DIR) --tokenizer $(TOKENIZER) --run-dir $(@D)
$(REPORTS_DIR)/$(SEEDS_JSON): $(foreach r,$(SEED_RUNS),$(REPORTS_DIR)/$(r)/$(TEST_JSON) $(RUNS_DIR)/$(r)/$(EXPORTED))
	$(PIPELINE) seeds --runs $(SEED_RUNS) --reports-dir $(REPORTS_DIR) --out-dir $(REPORTS_DIR)

# The recipe's evidence: gru_bahdanau 256/256 on de-en with one setting changed at a time, compared
# on the validation split (reports/de-en/tuning/tuning.md). Each run's preset, variant and settings
# are data, pipeline/config.py's TUNING_RUNS: A-E on quick's defaults and at most 12 epochs, the
# rate halved on plateaus; R, F, G and T on the converge schedule itself (7 epochs, halved after
# every epoch from the 5th), with the guard off. Every run uses $(TOKENIZER), the current PRESET's.
TUNE_DIR ?= runs/tune
TUNE_OUT ?= reports/de-en/tuning
TUNE_RUNS ?= A_d01 B_d03 C_d03_ls D_d03_ls_tie E_d03_decay5 R_converge F_converge_d01 G_converge_nols \
	T_converge_tie
# The Transformer's schedule (a warmup to a peak rate, then 1/sqrt(step) decay) and shape, on
# converge's budget (7 epochs): peaks of 1e-3 and 5e-4 beside the 2e-3 of the converge run itself,
# read from its committed report folder; a deep encoder with a shallow decoder (6 layers and 1),
# and Transformer-tiny (model size 128, 4 layers each side, feed-forward 512), at 2e-3 (make
# tune-transformer: reports/de-en/tuning/transformer/tuning.md).
TRANSFORMER_TUNE_RUNS ?= transformer_peak1e3 transformer_peak5e4 transformer_6x1 transformer_tiny
# Finished runs elsewhere to compare beside the tuning runs (their folders).
TUNE_WITH ?=
## the recipe's tuning runs (TUNE_RUNS=) on validation: reports/de-en/tuning/tuning.md
tune: $(TUNE_OUT)/$(TUNING_JSON)
	@cat $(TUNE_OUT)/$(TUNING_MD)
## the Transformer's schedule and shape, beside the converge Transformer, on validation
tune-transformer:
	$(MAKE) tune PRESET=converge TUNE_RUNS="$(TRANSFORMER_TUNE_RUNS)" TUNE_OUT=$(TUNE_OUT)/transformer \
		TUNE_WITH=reports/de-en/converge/transformer
$(TUNE_DIR)/%/$(SUMMARY): $(TOKENIZER)
	$(PIPELINE) train --tuning-run $* --pair $(PAIR) --data-dir $(TFDS_DIR) --tokenizer $(TOKENIZER) --run-dir $(@D)
$(TUNE_OUT)/$(TUNING_JSON): $(foreach r,$(TUNE_RUNS),$(TUNE_DIR)/$(r)/$(SUMMARY)) $(foreach r,$(TUNE_WITH),$(r)/$(SUMMARY))
	$(PIPELINE) tuning --runs $(TUNE_WITH) $(foreach r,$(TUNE_RUNS),$(TUNE_DIR)/$(r)) --out-dir $(TUNE_OUT)
