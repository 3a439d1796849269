# The best model of a pair and the students distilled from it. Included by the Makefile.
#   make best PAIR=de-en                 the ensemble of converge runs that scores best on validation
#   make distill PAIR=de-en VARIANT=gru  a student trained on the best model's translations
# Both run on the converge runs (BEST_PRESET=converge): `make` calls itself with that PRESET, so the
# Makefile's rules train, export and evaluate what is missing under runs/<pair>-converge.

.PHONY: best best-model distill distill-model best-readme

BEST_PRESET ?= converge
# The candidates: run folders under $(RUNS_DIR), a -seed<n> suffix for another seed (SEEDS=).
BEST_CANDIDATES ?= gru_luong transformer gru_luong-seed1 transformer-seed1 gru_bahdanau
BEST_DIR ?= reports/$(CORPUS_PREFIX)$(PAIR)/best
BEST_BASE = $(SAVED_DIR)/$(CORPUS_PREFIX)best$(PAIR_SUFFIX)
BEST_EXPORTED = $(RUNS_DIR)/best/$(EXPORTED)
DISTILL_ROOT ?= $(DATA_DIR)/distill/$(CORPUS_PREFIX)$(PAIR)
DISTILL_DIR ?= reports/$(CORPUS_PREFIX)$(PAIR)/distilled
TEACHER = $(RUNS_DIR)/best/$(TEACHER_RECORD)

# The converge candidates (BEST_CANDIDATES=) trained where missing, the ensemble chosen greedily on
# validation, exported (saved_models/best, best_en_de for en-de) and evaluated (reports/<pair>/best).
## the best model of PAIR=: an ensemble of converge runs chosen on validation, into reports/<pair>/best
best:
	@$(MAKE) --no-print-directory best-model PRESET=$(BEST_PRESET)
## make best's work on the runs of PRESET= (make best calls it with BEST_PRESET)
best-model: $(BEST_DIR)/$(TEST_JSON) $(BEST_DIR)/$(SERVE_EXCHANGE)
	@cat $(BEST_DIR)/$(SELECTION_MD)

# Any variant with another seed, as `make seeds` trains gru_bahdanau's: <variant>-seed<n>.
define SEED_RUN
.PRECIOUS: $(RUNS_DIR)/%-seed$(1)/$(SUMMARY)
$(RUNS_DIR)/%-seed$(1)/$(SUMMARY): $(TOKENIZER)
	$(PIPELINE) train --corpus $(CORPUS) --pair $(PAIR) --preset $(PRESET) --variant $$* --set train.seed=$(1) \
		--set data.seed=$(1) --data-dir $(TFDS_DIR) --tokenizer $(TOKENIZER) --run-dir $$(@D)
endef
$(foreach s,$(SEEDS),$(eval $(call SEED_RUN,$(s))))

# Validation chooses the members and the length penalty; the test split is read after, by evaluate.
$(BEST_DIR)/$(SELECTION_JSON): $(foreach c,$(BEST_CANDIDATES),$(RUNS_DIR)/$(c)/$(SUMMARY))
	$(PIPELINE) best --runs $(foreach c,$(BEST_CANDIDATES),$(RUNS_DIR)/$(c)) --data-dir $(TFDS_DIR) \
		--out-dir $(BEST_DIR)
$(BEST_EXPORTED): $(BEST_DIR)/$(SELECTION_JSON)
	mkdir -p $(@D)
	$(PIPELINE) export $$(sed 's/^/--run-dir /' $(BEST_DIR)/$(BEST_MEMBERS)) \
		--decoding $(BEST_DIR)/$(DECODING_JSON) --out $(BEST_BASE) --record $@
$(BEST_DIR)/$(TEST_JSON): $(BEST_EXPORTED)
	$(EVALUATE) --model $$(cat $<) --split validation --out-dir $(BEST_DIR)
	$(EVALUATE) --model $$(cat $<) --split test --beam-size 1 --out-dir $(BEST_DIR)
	$(EVALUATE) --model $$(cat $<) --split test --out-dir $(BEST_DIR)
# The README's serving example: its curl requests sent to the best model as `make serve` serves it.
$(BEST_DIR)/$(SERVE_EXCHANGE): $(BEST_EXPORTED)
	$(PIPELINE) exchange --pair $(PAIR) --model-dir $(SAVED_DIR) --model $(notdir $(BEST_BASE)) \
		--data-dir $(TFDS_DIR) --out $@

# The student trains with its variant's converge preset and recipe on the best model's translations of
# the training split (beam 5); validation and test keep their references.
## a student VARIANT= trained on the best model's translations, into reports/<pair>/distilled/<variant>
distill:
	@$(MAKE) --no-print-directory distill-model PRESET=$(BEST_PRESET)
## make distill's work on the runs of PRESET= (make distill calls it with BEST_PRESET)
distill-model: $(DISTILL_DIR)/$(VARIANT)/$(TEST_JSON) $(DISTILL_DIR)/$(VARIANT)/$(ANALYSIS) \
		$(DISTILL_DIR)/$(VARIANT)/$(AGAINST_REFERENCES_JSON) $(RUNS_DIR)/distilled-$(VARIANT)/$(EXPORTED)
	@$(PYTHON) -c "import json; r = json.load(open('$<')); print(f\"BLEU {r['bleu']}  chrF {r['chrf']}  ({r['pair']} {r['split']}, $(VARIANT) distilled, {r['decoding']})\")"

# The teacher's translations, keyed on its export (data/distill/<pair>/best-<version>/): every
# student of one export reads the same file, translated once.
$(TEACHER): $(BEST_EXPORTED)
	$(PIPELINE) teach --corpus $(CORPUS) --pair $(PAIR) --model $$(cat $<) --data-dir $(TFDS_DIR) \
		--out-root $(DISTILL_ROOT) --record $@
.PRECIOUS: $(RUNS_DIR)/distilled-%/$(SUMMARY) $(RUNS_DIR)/distilled-%/$(EXPORTED)
$(RUNS_DIR)/distilled-%/$(SUMMARY): $(TOKENIZER) $(TEACHER)
	$(PIPELINE) train --corpus $(CORPUS) --pair $(PAIR) --preset $(PRESET) --variant $* \
		--set data.train_targets=$$(cat $(TEACHER)) --data-dir $(TFDS_DIR) --tokenizer $(TOKENIZER) --run-dir $(@D)
$(RUNS_DIR)/distilled-%/$(EXPORTED): $(RUNS_DIR)/distilled-%/$(SUMMARY)
	$(PIPELINE) export --run-dir $(@D) --out $(SAVED_DIR)/$(call MODEL_NAME,$*_distilled) --record $@
$(DISTILL_DIR)/%/$(TEST_JSON): $(RUNS_DIR)/distilled-%/$(EXPORTED)
	$(EVALUATE) --model $$(cat $<) --split validation --out-dir $(DISTILL_DIR)/$*
	$(EVALUATE) --model $$(cat $<) --split test --beam-size 1 --out-dir $(DISTILL_DIR)/$*
	$(EVALUATE) --model $$(cat $<) --split test --out-dir $(DISTILL_DIR)/$*
	cd $(RUNS_DIR)/distilled-$* && cp $(RUN_FILES_COPIED) $(abspath $(DISTILL_DIR))/$*/
# The student against the same variant trained on the references (its converge report folder, made
# if missing): test BLEU gaps and paired bootstrap p, greedy and beam, read by the lesson's reading.
$(DISTILL_DIR)/%/$(AGAINST_REFERENCES_JSON): $(DISTILL_DIR)/%/$(TEST_JSON) $(REPORTS_DIR)/%/$(TEST_JSON) $(SPLIT_FILE)
	$(PIPELINE) student --corpus $(CORPUS) --pair $(PAIR) --student $(DISTILL_DIR)/$* --references $(REPORTS_DIR)/$* \
		--split-file $(SPLIT_FILE) --out $@
$(DISTILL_DIR)/%/$(ANALYSIS): $(RUNS_DIR)/distilled-%/$(EXPORTED)
	$(PIPELINE) analyse --run-dir $(RUNS_DIR)/distilled-$* --data-dir $(TFDS_DIR) --out-dir $(DISTILL_DIR)/$*

# The README's lines on each pair's best model and its students, from their report folders alone
# (`nmt bestline`): "not built yet" for a pair until `make best` has run. `make readme` copies them too.
README_BEST_PAIRS ?= de-en en-de
readme: best-readme
## the README's best-model lines from reports/<pair>/best and reports/<pair>/distilled/, both pairs
best-readme: $(INSTALLED)
	@$(PIPELINE) bestline --reports-dir $(foreach p,$(README_BEST_PAIRS),reports/$(p)) --out reports/$(BEST_LINES_MD)
	@$(PIPELINE) readme --compare reports/$(BEST_LINES_MD) --marker best --readme README.md
