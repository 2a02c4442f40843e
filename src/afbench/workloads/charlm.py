"""Character-level language model: a small decoder-only transformer on a fixed text.

Where the activation choice matters today (Shazeer 2020, "GLU Variants Improve
Transformer"): the feed-forward block. An element-wise activation gives the plain
block ``act(x W1) W2``; a gated unit (geglu, swiglu, reglu, glu: ``act_layer``'s
``width_multiplier`` is 2) gives ``(act(x W) * x V) W2`` with the hidden width scaled
by 2/3, so that both blocks hold the same number of parameters (Shazeer's Table 1
protocol). The model's parameter count is in every run's summary.

Data: ``sklearn-text``, text that every afbench install has: scikit-learn's data set
descriptions (English prose, 43 kB) followed by the source of its linear models
(Python with long docstrings, 750 kB); 43 kB alone was overfitted within 2,000 steps.
Its SHA-256 is pinned, so a run trains on the same characters on every machine
(another scikit-learn release may ship other text: then it is reported unavailable,
and ``--dataset text:PATH`` trains on a file of yours).
The text is cut into windows of ``CONTEXT`` + 1 characters, and every tenth window
is held out for validation (which also serves as the test split): validation text
comes from all through the corpus, as the training text does.

Metric: validation bits per character (mean cross-entropy / ln 2), lower is better.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from afbench.data import Prepared, Split
from afbench.errors import AfbenchError
from afbench.workloads.base import Metric, Workload

CONTEXT = 128
CORPUS = "sklearn-text"
CORPUS_SHA256 = "44a43bdc99b63a8967c905f406e9fb83f5bd3d8e2960587a8ff84dcd5e5e0911"  # scikit-learn 1.9.1
VALID_FRACTION = 0.1


def _corpus_files() -> list[Path]:
    import sklearn

    root = Path(sklearn.__file__).parent
    return sorted((root / "datasets" / "descr").glob("*.rst")) + sorted((root / "linear_model").glob("*.py"))


def corpus_text(name: str) -> str:
    """The text of ``name``: the pinned corpus, or ``text:PATH``."""
    if name.startswith("text:"):
        path = Path(name[5:]).expanduser()
        if not path.is_file():
            raise AfbenchError(f"text file '{path}' does not exist: give text:PATH to a UTF-8 text file")
        text = path.read_text(encoding="utf-8", errors="replace")
    elif name == CORPUS:
        text = "".join(p.read_text(encoding="utf-8") for p in _corpus_files())
        digest = hashlib.sha256(text.encode()).hexdigest()
        if digest != CORPUS_SHA256:
            raise AfbenchError(f"the corpus {CORPUS} (scikit-learn's data set descriptions) differs from the one "
                               f"afbench pins (sha256 {digest[:12]}, expected {CORPUS_SHA256[:12]}): another "
                               "scikit-learn release. Train on your own text with --dataset text:PATH")
    else:
        raise AfbenchError(f"unknown text '{name}': use {CORPUS} or text:PATH")
    if len(text) < 20 * (CONTEXT + 1):
        raise AfbenchError(f"text '{name}' has {len(text)} characters: give at least {20 * (CONTEXT + 1)}")
    return text


def _windows(tokens: torch.Tensor, stride: int) -> Split:
    starts = torch.arange(0, len(tokens) - CONTEXT - 1, stride)
    windows = tokens[starts[:, None] + torch.arange(CONTEXT + 1)]  # (n, CONTEXT + 1)
    return Split(windows[:, :-1].contiguous(), windows[:, 1:].contiguous())


class Block(nn.Module):
    """Pre-norm causal self-attention and feed-forward block."""

    def __init__(self, width: int, heads: int, ffn: nn.Module) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv, self.proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.ffn = ffn

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        b, t, c = h.shape
        q, k, v = self.qkv(self.norm1(h)).view(b, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        h = h + self.proj(attended.transpose(1, 2).reshape(b, t, c))
        return h + self.ffn(self.norm2(h))


class FeedForward(nn.Module):
    """act(x W_in) W_out; for a gated unit W_in is [W | V] and act halves the width."""

    def __init__(self, width: int, hidden: int, act_layer) -> None:
        super().__init__()
        multiplier = getattr(act_layer, "width_multiplier", 1)
        # (m + 1) * width * hidden' parameters match 2 * width * hidden: 2/3 of the width for a gated unit
        self.hidden = hidden if multiplier == 1 else round(2 * hidden / (multiplier + 1))
        self.fc_in = nn.Linear(width, multiplier * self.hidden)
        self.act = act_layer(multiplier * self.hidden)
        self.fc_out = nn.Linear(self.hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc_in(x)
        shape = h.shape
        h = self.act(h.reshape(-1, shape[-1]))  # features on dim 1, as afbench's activations expect
        return self.fc_out(h.reshape(*shape[:-1], h.shape[-1]))


class CharTransformer(nn.Module):
    def __init__(self, vocab: int, width: int, depth: int, heads: int, hidden: int, act_layer) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.position = nn.Parameter(torch.zeros(1, CONTEXT, width))
        nn.init.normal_(self.position, std=0.02)
        self.blocks = nn.Sequential(*[Block(width, heads, FeedForward(width, hidden, act_layer))
                                      for _ in range(depth)])
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.embed(tokens) + self.position[:, :tokens.shape[1]]
        return self.head(self.norm(self.blocks(h)))


class CharLM(Workload):
    def __init__(self, name: str, size: str, width: int, depth: int, heads: int, hidden: int, defaults: dict,
                 target: float) -> None:
        super().__init__(name, "charlm", f"character-level LM: decoder-only transformer, width {width}, depth "
                                         f"{depth}, context {CONTEXT}, FFN {hidden} (gated: 2/3 of it)",
                         data=CORPUS, model=f"transformer-{width}x{depth}", primary=Metric("bpc", False),
                         size=size, target=target, defaults=defaults)
        self.shape = (width, depth, heads, hidden)

    def owns(self, name: str) -> bool:
        return name == CORPUS or name.startswith("text:")

    def data_available(self) -> bool:
        try:
            corpus_text(CORPUS)
            return True
        except AfbenchError:
            return False

    def load_data(self, name: str) -> Prepared:
        text = corpus_text(name)
        chars = sorted(set(text))
        lookup = {c: i for i, c in enumerate(chars)}
        tokens = torch.tensor([lookup[c] for c in text], dtype=torch.long)
        windows = _windows(tokens, CONTEXT + 1)  # non-overlapping: no character in both splits
        held = torch.arange(len(windows.x)) % round(1 / VALID_FRACTION) == 0  # every 10th window, all through the text
        valid = Split(windows.x[held].contiguous(), windows.y[held].contiguous())
        train = Split(windows.x[~held].contiguous(), windows.y[~held].contiguous())
        return Prepared(name, tuple(chars), train, valid, valid, (0.0,), (1.0,))

    def build(self, config, data: Prepared, act_layer) -> nn.Module:
        width, depth, heads, hidden = self.shape
        return CharTransformer(len(data.classes), width, depth, heads, hidden, act_layer)

    def loss(self, forward, model, x, y):
        logits = forward(model, x)
        return F.cross_entropy(logits.flatten(0, 1), y.flatten()), logits

    @torch.inference_mode()
    def evaluate(self, model, split: Split) -> dict[str, float]:
        model.eval()
        total = 0.0
        for start in range(0, len(split), 64):
            logits = model(split.x[start:start + 64]).float()
            total += float(F.cross_entropy(logits.flatten(0, 1), split.y[start:start + 64].flatten(),
                                           reduction="sum"))
        loss = total / split.y.numel()
        return {"loss": loss, "bpc": loss / math.log(2)}

    def diverged(self, train_loss: float, data: Prepared) -> bool:
        return not math.isfinite(train_loss) or train_loss > 100 * math.log(max(len(data.classes), 2))


def small() -> CharLM:
    return CharLM("charlm", "small", 128, 2, 4, 512, {"epochs": 2, "batch_size": 8, "lr": 3e-3}, target=2.5)


def large() -> CharLM:
    return CharLM("charlm-large", "large", 256, 6, 8, 1024, {"epochs": 40, "batch_size": 64, "lr": 1e-3},
                  target=2.5)
