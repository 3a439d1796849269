"""Special token ids and pieces, the corpora, pairs and model variants: defined once, importing nothing."""

PAD_ID = 0
UNK_ID = 1
BOS_ID = 2
EOS_ID = 3

PAD_PIECE = "<pad>"
UNK_PIECE = "<unk>"
BOS_PIECE = "<s>"
EOS_PIECE = "</s>"

# The corpus by default; any other is a TFDS translation dataset by name (pipeline.corpus).
DEFAULT_CORPUS = "multi30k"
DEFAULT_CORPUS_TITLE = "Multi30k"  # what messages and reports call it; another corpus: its name
LANGUAGES = ("en", "de", "fr", "cs")  # Multi30k's
PAIRS = ("de-en", "en-de", "fr-en", "en-fr", "cs-en", "en-cs")  # source-target

# The model variants, defined once: variant -> (cell, attention). A recurrent variant is a cell type
# plus an optional attention; the transformer has no recurrence, only (multi-head) attention.
# pipeline.models builds each; the report reads a row's cell and attention here, without the models.
VARIANTS: dict[str, tuple[str, str | None]] = {
    "rnn": ("rnn", None),
    "lstm": ("lstm", None),
    "gru": ("gru", None),
    "lstm_bahdanau": ("lstm", "bahdanau"),
    "gru_bahdanau": ("gru", "bahdanau"),
    "gru_luong": ("gru", "luong"),
    "transformer": ("transformer", "multi-head"),
}
VARIANT_NAMES = tuple(VARIANTS)

# The decoding the exported model uses when a client does not choose one.
DEFAULT_BEAM_SIZE = 5
DEFAULT_LENGTH_PENALTY = 0.6  # for an export whose run did not tune it

# A time budget (train.time_budget_minutes) is minutes on a machine whose `make bench` ceiling, the
# float32 matrix-product rate, is this; a slower machine's guard is longer in proportion.
REFERENCE_CEILING_GFLOPS = 400.0

# train.strategy: one device, the local devices of one machine, or several machines (TF_CONFIG).
STRATEGIES = ("default", "mirrored", "multi_worker")

# Where the core-ops servable of an export goes: saved_models/gru -> saved_models/gru-ids.
IDS_SUFFIX = "-ids"

# The version of what training computes from a config: raised by a change that alters what a run
# trains (its batches, masks or updates), not by one to its speed or reports. Every train.json
# records it, and rows trained under different versions are not comparable. 2: exact resume
# (each epoch shuffled by its number, the dropout streams checkpointed).
TRAINING_CODE = 2
