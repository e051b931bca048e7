"""Greedy and beam-search generation for encoder-decoder models, over any backend.

The search loops only see a small :class:`StepModel` interface (numpy in, numpy out):

- ``start(src, src_padding_mask) -> state``: run the encoder once;
- ``step(state, tokens) -> (logits, state)``: feed one token per row (N,), get (N, V) logits;
- ``reorder(state, index, within_groups)``: keep/duplicate rows (beam search), where
  ``within_groups`` says every new row comes from a row of the same source, so per-source tensors
  (cross-attention keys/values, memory mask) need no gathering.

Implementations: :class:`TorchCachedStep` (the PyTorch model with its KV cache),
:class:`TorchRecomputeStep` (PyTorch, the whole prefix recomputed each step; the no-cache baseline)
and :class:`RunnerStep` (an encoder runner + a decoder runner of any backend on the exported
graphs). Graph I/O and cache layout: see :mod:`tdeploy.models.transformer`.

Lengths: ``max_new_tokens`` counts generated tokens (EOS included, BOS not); token t is generated
at decoder position t, so ``max_new_tokens`` may be at most the positional table size.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np
import torch

from tdeploy.errors import TdeployError

# --- configuration and inputs -----------------------------------------------------------------------

@dataclass(frozen=True)
class GenerationConfig:
    bos_id: int
    eos_id: int | None  # None: never stop early (fixed-length decoding, e.g. for benchmarks)
    pad_id: int
    max_new_tokens: int
    beam: int = 1  # 1: greedy
    length_penalty: float = 1.0  # beam: hypotheses ranked by sum(log p) / length ** length_penalty

    @classmethod
    def from_extra(cls, extra: dict[str, Any], **overrides) -> GenerationConfig:
        """Defaults from a seq2seq ExportSpec.extra (the sidecar); None overrides are ignored."""
        base = cls(bos_id=extra["bos_id"], eos_id=extra["eos_id"], pad_id=extra["pad_id"],
                   max_new_tokens=extra["max_new_tokens"])
        return replace(base, **{k: v for k, v in overrides.items() if v is not None})

    def check(self, extra: dict[str, Any]) -> None:
        """One-line errors for settings the model cannot take."""
        vocab, max_len = extra["tgt_vocab_size"], extra["max_len"]
        for name in ("bos_id", "eos_id", "pad_id"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < vocab:
                raise TdeployError(f"--{name.replace('_', '-')} {value} is outside the target vocabulary "
                                   f"(0..{vocab - 1})")
        if self.beam < 1:
            raise TdeployError(f"--beam must be >= 1 (got {self.beam})")
        if not 1 <= self.max_new_tokens <= max_len:
            raise TdeployError(f"--max-length {self.max_new_tokens} is beyond the positional table: the model "
                               f"takes 1..{max_len} target positions")


def prepare_source(sequences: list[list[int]], *, pad_id: int, vocab_size: int, max_len: int):
    """Sequences of source ids -> (src (B, S) int64 padded with pad_id, src_padding_mask (B, S) bool).

    One-line errors for an empty source, ids outside the vocabulary and sources longer than the
    positional table.
    """
    if not sequences:
        raise TdeployError("no source sequence given: pass --tokens \"5 17 42\" or --tokens-file")
    for n, seq in enumerate(sequences, 1):
        if len(seq) == 0:
            raise TdeployError(f"source sequence {n} is empty: give at least one token id")
        bad = [t for t in seq if not 0 <= t < vocab_size]
        if bad:
            raise TdeployError(f"source sequence {n}: token id {bad[0]} is out of vocabulary (0..{vocab_size - 1})")
        if len(seq) > max_len:
            raise TdeployError(f"source sequence {n} has {len(seq)} tokens, beyond the positional table of "
                               f"{max_len} positions")
    S = max(len(s) for s in sequences)
    src = np.full((len(sequences), S), pad_id, dtype=np.int64)
    mask = np.ones((len(sequences), S), dtype=bool)
    for i, seq in enumerate(sequences):
        src[i, : len(seq)] = seq
        mask[i, : len(seq)] = False
    return src, mask


@dataclass
class GenerationResult:
    sequences: list[list[int]]  # generated ids per source, without BOS, EOS and padding
    tokens: np.ndarray  # (B, 1 + T) int64: BOS, generated ids, EOS, then pad_id
    scores: np.ndarray | None = None  # beam: length-normalised log-probability of each best hypothesis


# --- the step interface and its implementations -----------------------------------------------------

class StepModel(Protocol):
    def start(self, src: np.ndarray, src_padding_mask: np.ndarray) -> Any: ...

    def step(self, state: Any, tokens: np.ndarray) -> tuple[np.ndarray, Any]: ...

    def reorder(self, state: Any, index: np.ndarray, within_groups: bool) -> Any: ...


def _encode(model, src: np.ndarray, src_padding_mask: np.ndarray) -> dict[str, torch.Tensor]:
    """Run the PyTorch encoder once: the cross-attention K/V of every layer and the memory mask."""
    mask_t = torch.from_numpy(src_padding_mask)
    return {"cross_kv": model.cross_kv(model.encode(torch.from_numpy(src), mask_t)), "memory_mask": mask_t}


class TorchCachedStep:
    """The PyTorch model, one token per step with the self-attention cache (as the decoder graph)."""

    def __init__(self, model):
        self.model = model.eval()

    @torch.inference_mode()
    def start(self, src, src_padding_mask):
        state = _encode(self.model, src, src_padding_mask)
        return {**state, "past": self.model.empty_cache(len(src), state["cross_kv"].dtype)}

    @torch.inference_mode()
    def step(self, state, tokens):
        logits, present = self.model.decode_step(torch.from_numpy(tokens)[:, None], state["cross_kv"],
                                                 state["memory_mask"], state["past"])
        return logits.float().numpy(), {**state, "past": present}

    @torch.inference_mode()
    def reorder(self, state, index, within_groups):
        idx = torch.from_numpy(index)
        keys = ("past",) if within_groups else tuple(state)
        return {k: v.index_select(0, idx) if k in keys else v for k, v in state.items()}


class TorchRecomputeStep:
    """PyTorch without a cache: the decoder runs over the whole prefix at every step (the baseline)."""

    def __init__(self, model):
        self.model = model.eval()

    @torch.inference_mode()
    def start(self, src, src_padding_mask):
        return {**_encode(self.model, src, src_padding_mask), "prefix": torch.zeros(len(src), 0, dtype=torch.int64)}

    @torch.inference_mode()
    def step(self, state, tokens):
        prefix = torch.cat([state["prefix"], torch.from_numpy(tokens)[:, None]], dim=1)
        hidden = self.model.decode(prefix, state["cross_kv"], state["memory_mask"])
        logits = self.model.generator(hidden[:, -1])
        return logits.float().numpy(), {**state, "prefix": prefix}

    @torch.inference_mode()
    def reorder(self, state, index, within_groups):
        idx = torch.from_numpy(index)
        keys = ("prefix",) if within_groups else tuple(state)
        return {k: v.index_select(0, idx) if k in keys else v for k, v in state.items()}


class RunnerStep:
    """Encoder + decoder runners (torch, ort or trt) on the exported graphs; activate them first."""

    def __init__(self, encoder, decoder, extra: dict[str, Any]):
        self.encoder, self.decoder = encoder, decoder
        self.cache_shape = (2 * extra["num_layers"], extra["num_heads"], 1, extra["head_dim"])

    def start(self, src, src_padding_mask):
        out = self.encoder.infer({"src_tokens": src.astype(np.int64), "src_padding_mask": src_padding_mask})
        cross = out["cross_kv"]
        past = np.zeros((len(src), *self.cache_shape), dtype=cross.dtype)  # only the dummy slot
        return {"cross_kv": cross, "memory_mask": src_padding_mask, "past_self_kv": past, "memory": out["memory"]}

    def step(self, state, tokens):
        feed = {"tokens": tokens.astype(np.int64)[:, None], "cross_kv": state["cross_kv"],
                "memory_mask": state["memory_mask"], "past_self_kv": state["past_self_kv"]}
        out = self.decoder.infer(feed)
        return out["logits"].astype(np.float32, copy=False), {**state, "past_self_kv": out["present_self_kv"]}

    def reorder(self, state, index, within_groups):
        keys = ("past_self_kv",) if within_groups else tuple(state)
        return {k: np.take(v, index, axis=0) if k in keys else v for k, v in state.items()}


# --- search -----------------------------------------------------------------------------------------

def generate(step: StepModel, src: np.ndarray, src_padding_mask: np.ndarray | None,
             config: GenerationConfig) -> GenerationResult:
    """Greedy (beam 1) or beam search for a batch of sources (B, S); each source finishes on its own."""
    src = np.asarray(src, dtype=np.int64)
    mask = np.zeros(src.shape, dtype=bool) if src_padding_mask is None else np.asarray(src_padding_mask, bool)
    state = step.start(src, mask)
    if config.beam == 1:
        return _greedy(step, state, len(src), config)
    return _beam_search(step, state, len(src), config)


def forced_logits(step: StepModel, src: np.ndarray, src_padding_mask: np.ndarray | None,
                  tokens: np.ndarray) -> np.ndarray:
    """Teacher-forced logits: feed tokens (B, T) one by one, return (B, T, V) (row t predicts t + 1)."""
    mask = np.zeros(src.shape, dtype=bool) if src_padding_mask is None else src_padding_mask
    state = step.start(np.asarray(src, np.int64), mask)
    out = []
    for t in range(tokens.shape[1]):
        logits, state = step.step(state, np.ascontiguousarray(tokens[:, t]))
        out.append(logits)
    return np.stack(out, axis=1)


def _greedy(step, state, B: int, cfg: GenerationConfig) -> GenerationResult:
    tokens = np.full((B, 1), cfg.bos_id, dtype=np.int64)
    finished = np.zeros(B, dtype=bool)
    for _ in range(cfg.max_new_tokens):
        logits, state = step.step(state, tokens[:, -1])
        nxt = np.where(finished, cfg.pad_id, logits.argmax(-1)).astype(np.int64)
        tokens = np.concatenate([tokens, nxt[:, None]], axis=1)
        if cfg.eos_id is not None:
            finished |= nxt == cfg.eos_id
        if finished.all():
            break
    return GenerationResult([_strip(row[1:], cfg) for row in tokens], tokens)


def _strip(ids, cfg: GenerationConfig) -> list[int]:
    out = []
    for t in ids:
        if cfg.eos_id is not None and t == cfg.eos_id:
            break
        out.append(int(t))
    return out


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float32, copy=False)
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


class _Hypotheses:
    """The best ``k`` finished hypotheses of one source (normalised score, ids incl. EOS)."""

    def __init__(self, k: int, length_penalty: float):
        self.k, self.lp = k, length_penalty
        self.items: list[tuple[float, list[int]]] = []

    def add(self, logprob: float, ids: list[int]) -> None:
        self.items.append((logprob / max(len(ids), 1) ** self.lp, ids))
        self.items.sort(key=lambda item: -item[0])  # stable: earlier hypotheses win ties
        del self.items[self.k :]

    def worst(self) -> float:
        return self.items[-1][0] if len(self.items) == self.k else -np.inf


def _beam_search(step, state, B: int, cfg: GenerationConfig) -> GenerationResult:
    K, lp, eos = cfg.beam, cfg.length_penalty, cfg.eos_id
    state = step.reorder(state, np.repeat(np.arange(B), K), within_groups=False)  # (B*K, ...)
    tokens = np.full((B * K, 1), cfg.bos_id, dtype=np.int64)
    beam_scores = np.zeros((B, K), dtype=np.float64)
    beam_scores[:, 1:] = -np.inf  # all beams start equal: expand only the first
    hyps = [_Hypotheses(K, lp) for _ in range(B)]
    done = np.zeros(B, dtype=bool)
    for t in range(cfg.max_new_tokens):
        logits, state = step.step(state, tokens[:, -1])
        V = logits.shape[-1]
        cand = (beam_scores.reshape(B * K, 1) + _log_softmax(logits)).reshape(B, K * V)
        n = min(2 * K, K * V)
        top = np.argpartition(-cand, n - 1, axis=1)[:, :n]
        top_scores = np.take_along_axis(cand, top, axis=1)
        order = np.lexsort((top, -top_scores), axis=-1)  # best first; ties: lower index first
        top, top_scores = np.take_along_axis(top, order, 1), np.take_along_axis(top_scores, order, 1)
        cur_len = t + 1  # generated tokens after this step
        next_beam = np.tile(np.arange(K), (B, 1))
        next_tok = np.full((B, K), cfg.pad_id, dtype=np.int64)
        next_scores = np.full((B, K), -np.inf)  # slots left without a candidate stay dead
        for b in range(B):
            if done[b]:
                continue
            j = 0
            for rank in range(n):
                beam, tok = divmod(int(top[b, rank]), V)
                score = float(top_scores[b, rank])
                if score == -np.inf:
                    break
                if eos is not None and tok == eos:
                    if rank < K:  # an EOS among the K best finishes a hypothesis
                        hyps[b].add(score, [*tokens[b * K + beam, 1:].tolist(), tok])
                    continue
                next_beam[b, j], next_tok[b, j], next_scores[b, j] = beam, tok, score
                j += 1
                if j == K:
                    break
            # Done when no running beam can still beat the worst kept hypothesis: with log-probs <= 0,
            # the best a beam can reach is its current sum over the most favourable final length.
            best_len = cfg.max_new_tokens if lp > 0 else cur_len + 1
            if len(hyps[b].items) == K and hyps[b].worst() >= next_scores[b].max() / best_len**lp:
                done[b] = True
        if done.all() or t == cfg.max_new_tokens - 1:
            running = next_scores
            last_tokens = np.concatenate(
                [tokens[(np.arange(B)[:, None] * K + next_beam).ravel()], next_tok.reshape(-1, 1)], axis=1)
            break
        select = (np.arange(B)[:, None] * K + next_beam).ravel()
        tokens = np.concatenate([tokens[select], next_tok.reshape(-1, 1)], axis=1)
        beam_scores = np.where(done[:, None], 0.0, next_scores)
        state = step.reorder(state, select, within_groups=True)
    else:  # max_new_tokens == 0
        running, last_tokens = beam_scores, tokens
    for b in range(B):  # sources that ran out of length: their running beams compete as they are
        if not done[b]:
            for k in range(K):
                if running[b, k] > -np.inf:
                    hyps[b].add(float(running[b, k]), last_tokens[b * K + k, 1:].tolist())
    best = [h.items[0] for h in hyps]
    width = 1 + max(len(ids) for _, ids in best)
    out = np.full((B, width), cfg.pad_id, dtype=np.int64)
    out[:, 0] = cfg.bos_id
    for b, (_, ids) in enumerate(best):
        out[b, 1 : 1 + len(ids)] = ids
    return GenerationResult([_strip(ids, cfg) for _, ids in best], out, np.array([s for s, _ in best]))


# --- artifacts --------------------------------------------------------------------------------------

def seq2seq_extra(artifact) -> dict[str, Any]:
    """The generation settings an artifact's sidecar carries; a one-line error for other tasks."""
    sc = artifact.sidecar
    spec = sc.main.export_spec()
    if spec.task != "seq2seq" or not {"encoder", "decoder"} <= set(sc.graphs):
        raise TdeployError(f"{artifact.root} holds a {spec.task} model ({sc.variant}); generation needs a "
                           "seq2seq artifact with encoder and decoder graphs (deploy export transformer-...)")
    return spec.extra


def runner_step(artifact, backend: str, *, threads: int = 0, model=None) -> RunnerStep:
    """A RunnerStep on the artifact's graphs (not yet activated); ``model`` is needed for torch."""
    from tdeploy.deploy.backends import make_runner

    extra = seq2seq_extra(artifact)
    modules = model.export_graphs() if model is not None else {}
    runners = [make_runner(backend, artifact, g, threads=threads,
                           torch_module=modules[g][0] if g in modules else None) for g in ("encoder", "decoder")]
    return RunnerStep(*runners, extra)
