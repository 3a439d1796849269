from conftest import real_corpus_present

from pipeline import corpus, layout
from pipeline.config import TokenizerConfig
from pipeline.constants import BOS_ID, BOS_PIECE, EOS_ID, EOS_PIECE, PAD_ID, PAD_PIECE, UNK_ID, UNK_PIECE
from pipeline.tokenizer import load_tokenizer, train_tokenizer


def test_special_ids_are_the_pipeline_constants(spm_model):
    sp = load_tokenizer(spm_model)
    assert (sp.pad_id(), sp.unk_id(), sp.bos_id(), sp.eos_id()) == (PAD_ID, UNK_ID, BOS_ID, EOS_ID)
    assert [sp.id_to_piece(i) for i in (PAD_ID, UNK_ID, BOS_ID, EOS_ID)] == [
        PAD_PIECE, UNK_PIECE, BOS_PIECE, EOS_PIECE,
    ]  # fmt: skip
    assert_vocabulary(spm_model, 400)


def assert_vocabulary(path, size: int) -> None:
    """SentencePiece was asked for ``size`` pieces, and Multi30k fills them; the synthetic corpus
    of a machine without it (a few dozen words a language) leaves fewer, never more."""
    pieces = load_tokenizer(path).vocab_size()
    assert pieces == size if real_corpus_present() else 4 < pieces <= size


def test_german_round_trip(spm_model):
    sp = load_tokenizer(spm_model)
    # Words of Multi30k and of the synthetic corpus alike; umlauts and ß among them.
    sentence = "Ein fröhlicher Junge und ein großer Hund spielen auf der Straße."
    ids = sp.encode(sentence)
    assert len(ids) > 5  # split into pieces, not one id per sentence
    assert UNK_ID not in ids  # character_coverage 1.0: umlauts and ß are known
    assert all(i not in (PAD_ID, BOS_ID, EOS_ID) for i in ids)  # ends are added by the dataset
    assert sp.decode(ids) == sentence


def test_trains_on_the_train_split_only(prepared_data, tmp_path, monkeypatch):
    requested = []
    load_split = corpus.load_split

    def recording_load_split(pair, split, data_dir, **kwargs):
        requested.append((pair, split))
        return load_split(pair, split, data_dir, **kwargs)

    monkeypatch.setattr(corpus, "load_split", recording_load_split)
    path = train_tokenizer(TokenizerConfig(vocab_size=100, train_limit=200), "de-en", prepared_data, tmp_path)
    assert requested == [("de-en", "train")]
    assert path == tmp_path / layout.TOKENIZER and path.is_file()
    assert_vocabulary(path, 100)


def trainer_spec(path):
    from sentencepiece import sentencepiece_model_pb2

    model = sentencepiece_model_pb2.ModelProto()
    model.ParseFromString(path.read_bytes())
    return model.trainer_spec


def test_a_sample_smaller_than_the_corpus_is_what_sentencepiece_reads(prepared_data, tmp_path):
    # 2,000 pairs are 4,000 sentences: a 1,000-sentence sample is taken, a 4,000 one is not needed.
    sampled = TokenizerConfig(vocab_size=100, train_limit=2000, sample_sentences=1000)
    spec = trainer_spec(train_tokenizer(sampled, "de-en", prepared_data, tmp_path / "sampled"))
    assert spec.input_sentence_size == 1000 and spec.shuffle_input_sentence

    whole = TokenizerConfig(vocab_size=100, train_limit=2000, sample_sentences=4000)
    spec = trainer_spec(train_tokenizer(whole, "de-en", prepared_data, tmp_path / "whole"))
    assert spec.input_sentence_size == 0  # every sentence, and SentencePiece's arguments as before
