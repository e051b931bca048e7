"""Encoder-decoder Transformer: parity with the translation-tutorial model, the KV cache, search."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

from tdeploy.deploy.tasks.generation import (
    GenerationConfig,
    TorchCachedStep,
    TorchRecomputeStep,
    generate,
    prepare_source,
)
from tdeploy.errors import TdeployError
from tdeploy.models import create_model

PAD, BOS, EOS = 1, 2, 3
# nn.Transformer notes that its nested-tensor fast path is off for sequence-first layers: nothing to act on.
pytestmark = pytest.mark.filterwarnings("ignore:enable_nested_tensor is True:UserWarning")


class TutorialSeq2Seq(nn.Module):
    """The layout of PyTorch's translation tutorial model, written from its documented structure:
    token embeddings scaled by sqrt(emb), a sinusoidal ``pos_embedding`` buffer (maxlen, 1, emb),
    ``torch.nn.Transformer`` (sequence-first) and a linear ``generator``."""

    def __init__(self, emb=32, nhead=4, layers=2, ff=64, src_vocab=32, tgt_vocab=32, maxlen=5000, norm_first=False):
        super().__init__()
        self.emb = emb
        self.transformer = nn.Transformer(d_model=emb, nhead=nhead, num_encoder_layers=layers,
                                          num_decoder_layers=layers, dim_feedforward=ff, dropout=0.1,
                                          norm_first=norm_first)
        self.generator = nn.Linear(emb, tgt_vocab)
        self.src_tok_emb = nn.Module()
        self.src_tok_emb.embedding = nn.Embedding(src_vocab, emb)
        self.tgt_tok_emb = nn.Module()
        self.tgt_tok_emb.embedding = nn.Embedding(tgt_vocab, emb)
        self.positional_encoding = nn.Module()
        rates = torch.exp(-torch.arange(0, emb, 2) * math.log(10000) / emb)
        angles = torch.arange(maxlen)[:, None] * rates
        table = torch.stack([angles.sin(), angles.cos()], dim=-1).reshape(maxlen, emb)  # sin even, cos odd
        self.positional_encoding.register_buffer("pos_embedding", table[:, None, :])

    def _embed(self, module, tokens):  # (T, B) -> (T, B, E)
        x = module.embedding(tokens) * math.sqrt(self.emb)
        return x + self.positional_encoding.pos_embedding[: x.shape[0]]

    def forward(self, src, tgt, src_mask, tgt_mask, src_padding_mask, tgt_padding_mask, memory_key_padding_mask):
        out = self.transformer(self._embed(self.src_tok_emb, src), self._embed(self.tgt_tok_emb, tgt), src_mask,
                               tgt_mask, None, src_padding_mask, tgt_padding_mask, memory_key_padding_mask)
        return self.generator(out)


def _batch(gen: torch.Generator, B=3, S=9, T=6):
    src = torch.randint(4, 32, (B, S), generator=gen)
    tgt = torch.randint(4, 32, (B, T), generator=gen)
    src[1, 5:] = PAD
    src[2, 2:] = PAD
    tgt[1, 4:] = PAD
    return src, tgt


@pytest.fixture(scope="module", params=[False, True], ids=["post-norm", "pre-norm"])
def tutorial_checkpoint(request, tmp_path_factory):
    torch.manual_seed(3)
    reference = TutorialSeq2Seq(norm_first=request.param).eval()
    path = tmp_path_factory.mktemp("tutorial") / "seq2seq.pth"
    torch.save(reference.state_dict(), path)
    return reference, path, request.param


def test_logits_equal_tutorial_model(tutorial_checkpoint):
    reference, path, norm_first = tutorial_checkpoint
    model = create_model("transformer-tiny", checkpoint=path, norm_first=norm_first)
    src, tgt = _batch(torch.Generator().manual_seed(0))
    T = tgt.shape[1]
    causal = torch.ones(T, T, dtype=torch.bool).triu(1)  # True = not allowed, as the padding masks
    with torch.no_grad():
        no_mask = torch.zeros(src.shape[1], src.shape[1], dtype=torch.bool)
        want = reference(src.T, tgt.T, no_mask, causal, src == PAD, tgt == PAD, src == PAD).transpose(0, 1)
        got = model(src, tgt, src == PAD, tgt == PAD)
    keep = tgt != PAD  # the tutorial's outputs at padded target positions are not used by anyone
    torch.testing.assert_close(got[keep], want[keep], atol=2e-5, rtol=1e-5)


def test_cached_decoding_equals_teacher_forcing(tutorial_checkpoint):
    _, path, norm_first = tutorial_checkpoint
    model = create_model("transformer-tiny", checkpoint=path, norm_first=norm_first)
    src, tgt = _batch(torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = model(src, tgt, src == PAD)
        cross = model.cross_kv(model.encode(src, src == PAD))
        past = model.empty_cache(len(src))
        steps = []
        for t in range(tgt.shape[1]):
            logits, past = model.decode_step(tgt[:, t : t + 1], cross, src == PAD, past)
            steps.append(logits)
    assert past.shape == (3, 4, 4, 1 + tgt.shape[1], 8)
    torch.testing.assert_close(torch.stack(steps, 1), full, atol=1e-5, rtol=1e-5)


def test_alias_with_tutorial_checkpoint_picks_the_variant(tutorial_checkpoint):
    _, path, _ = tutorial_checkpoint
    model = create_model("transformer", checkpoint=path)
    assert model.variant_name == "transformer-tiny"
    assert model.positional_encoding.pos_embedding.shape == (64, 1, 32)  # the tutorial's 5000 rows, cut


def test_a_checkpoint_of_any_vocabulary_and_size_loads_as_it_is(tmp_path):
    """Vocabularies, width, FFN width and layer counts come from the file (it is not the variant's size);
    the result computes what the tutorial model computes."""
    torch.manual_seed(5)
    reference = TutorialSeq2Seq(emb=64, nhead=4, layers=3, ff=96, src_vocab=1000, tgt_vocab=1200).eval()
    path = tmp_path / "other.pth"
    torch.save(reference.state_dict(), path)
    model = create_model("transformer-tiny", checkpoint=path)
    assert model.inferred_config == {"src_vocab_size": 1000, "tgt_vocab_size": 1200, "d_model": 64,
                                     "num_encoder_layers": 3, "num_decoder_layers": 3, "dim_feedforward": 96}
    src = torch.randint(4, 1000, (2, 7))
    tgt = torch.randint(4, 1200, (2, 5))
    causal = torch.ones(5, 5, dtype=torch.bool).triu(1)
    with torch.no_grad():
        want = reference(src.T, tgt.T, torch.zeros(7, 7, dtype=torch.bool), causal, src == PAD, tgt == PAD,
                         src == PAD).transpose(0, 1)
        got = model(src, tgt, src == PAD, tgt == PAD)
    torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-5)


def test_the_family_alias_takes_the_closest_variant(tmp_path):
    """transformer + a 512-wide file of another vocabulary: transformer-base (its heads, 8), resized."""
    torch.manual_seed(6)
    path = tmp_path / "wide.pth"
    torch.save(TutorialSeq2Seq(emb=512, nhead=8, layers=1, ff=2048, src_vocab=300, tgt_vocab=300).state_dict(), path)
    model = create_model("transformer", checkpoint=path)
    assert model.variant_name == "transformer-base" and model.cfg.num_heads == 8
    assert model.inferred_config == {"src_vocab_size": 300, "tgt_vocab_size": 300, "num_encoder_layers": 1,
                                     "num_decoder_layers": 1}


def test_what_the_file_cannot_tell_is_one_line(tmp_path):
    path = tmp_path / "odd.pth"
    torch.save(TutorialSeq2Seq(emb=34, nhead=2).state_dict(), path)  # 34 is not divisible by tiny's 4 heads
    with pytest.raises(TdeployError, match=r"d_model=34 .*not divisible by num_heads 4.*--set num_heads=N") as info:
        create_model("transformer-tiny", checkpoint=path)
    assert "\n" not in str(info.value)
    model = create_model("transformer-tiny", checkpoint=path, num_heads=2)
    assert model.cfg.d_model == 34 and "num_heads" not in model.inferred_config


def test_shared_and_tied_embeddings():
    model = create_model("transformer-tiny", share_embeddings=True, tie_output=True)
    assert model.src_tok_emb is model.tgt_tok_emb
    assert model.generator.weight is model.tgt_tok_emb.embedding.weight
    sd = model.state_dict()
    assert "src_tok_emb.embedding.weight" in sd and "generator.weight" in sd
    with pytest.raises(ValueError, match="share_embeddings"):
        create_model("transformer-tiny", share_embeddings=True, tgt_vocab_size=40)


def test_variants_have_the_papers_sizes():
    with torch.device("meta"):
        base, big = create_model("transformer-base"), create_model("transformer-big")
    assert (base.cfg.d_model, base.cfg.num_heads, base.cfg.dim_feedforward) == (512, 8, 2048)
    assert (big.cfg.d_model, big.cfg.num_heads, big.cfg.dim_feedforward) == (1024, 16, 4096)
    assert base.cfg.num_encoder_layers == base.cfg.num_decoder_layers == 6 and not base.cfg.norm_first
    enc, dec = (spec for _, spec in base.export_graphs().values())
    assert enc.task == dec.task == "seq2seq"
    assert dec.extra["num_layers"] == 6 and dec.extra["head_dim"] == 64 and dec.extra["bos_id"] == BOS


# --- search ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("beam", [1, 3])
def test_cached_and_recomputed_generation_agree(beam):
    torch.manual_seed(5)
    model = create_model("transformer-tiny", norm_first=True).eval()
    for p in model.parameters():  # larger weights: varied, confident outputs from a random model
        p.data.mul_(3.0)
    src, mask = prepare_source([[5, 6, 7, 8, 9, 10], [11, 12], [13, 14, 15]], pad_id=PAD, vocab_size=32, max_len=64)
    cfg = GenerationConfig(bos_id=BOS, eos_id=EOS, pad_id=PAD, max_new_tokens=10, beam=beam)
    a = generate(TorchCachedStep(model), src, mask, cfg)
    b = generate(TorchRecomputeStep(model), src, mask, cfg)
    assert a.sequences == b.sequences
    np.testing.assert_array_equal(a.tokens, b.tokens)
    assert len({tuple(s) for s in a.sequences}) > 1


class MarkovStep:
    """A fake decoder: log-probs of the next token depend on the last token only (per source row)."""

    def __init__(self, tables):  # (B, V, V) log-probs
        self.tables = tables

    def start(self, src, mask):
        return {"row": np.arange(len(src))}

    def step(self, state, tokens):
        return self.tables[state["row"], tokens], state

    def reorder(self, state, index, within_groups):
        return {"row": state["row"][index]}


def _exhaustive_best(table, cfg):
    V = table.shape[0]
    best = (-np.inf, None)
    for n in range(1, cfg.max_new_tokens + 1):
        for seq in itertools.product(range(V), repeat=n):
            if any(t == cfg.eos_id for t in seq[:-1]):
                continue  # EOS ends a hypothesis
            prev, score = cfg.bos_id, 0.0
            for t in seq:
                score, prev = score + table[prev, t], t
            if seq[-1] != cfg.eos_id and n < cfg.max_new_tokens:
                continue  # unfinished hypotheses only count at the length limit
            norm = score / n**cfg.length_penalty
            if norm > best[0] + 1e-12:
                best = (norm, [t for t in seq if t != cfg.eos_id])
    return best


@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_wide_beam_finds_the_exhaustive_best_per_source(length_penalty):
    rng = np.random.default_rng(0)
    V = 4
    logits = rng.normal(size=(2, V, V)) * 2
    tables = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    cfg = GenerationConfig(bos_id=0, eos_id=1, pad_id=2, max_new_tokens=4, beam=V**4,
                           length_penalty=length_penalty)
    result = generate(MarkovStep(tables), np.zeros((2, 1)), None, cfg)
    for b in range(2):
        score, seq = _exhaustive_best(tables[b], cfg)
        assert result.sequences[b] == seq
        assert result.scores[b] == pytest.approx(score)


def test_greedy_finishes_each_sequence_on_its_own():
    V = 5
    tables = np.full((2, V, V), -10.0)
    tables[0, :, 1] = 0.0  # source 0: EOS at once
    tables[1, :, 4] = 0.0  # source 1: token 4 forever
    cfg = GenerationConfig(bos_id=0, eos_id=1, pad_id=2, max_new_tokens=5)
    result = generate(MarkovStep(tables), np.zeros((2, 1)), None, cfg)
    assert result.sequences == [[], [4, 4, 4, 4, 4]]
    assert result.tokens[0].tolist() == [0, 1, 2, 2, 2, 2]


@pytest.mark.parametrize(("sources", "message"), [
    ([[5, 40]], "token id 40 is out of vocabulary"),
    ([[5], []], "source sequence 2 is empty"),
    ([[5] * 65], "beyond the positional table of 64"),
    ([], "no source sequence"),
])
def test_bad_sources_are_one_line(sources, message):
    with pytest.raises(TdeployError, match=message) as info:
        prepare_source(sources, pad_id=PAD, vocab_size=32, max_len=64)
    assert "\n" not in str(info.value)


def test_generation_settings_are_checked():
    extra = {"tgt_vocab_size": 32, "max_len": 64}
    with pytest.raises(TdeployError, match="beyond the positional table"):
        GenerationConfig(bos_id=2, eos_id=3, pad_id=1, max_new_tokens=65).check(extra)
    with pytest.raises(TdeployError, match="--eos-id 99 is outside"):
        GenerationConfig(bos_id=2, eos_id=99, pad_id=1, max_new_tokens=8).check(extra)
