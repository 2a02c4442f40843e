"""afbench's training loop against two plain PyTorch loops, side by side in one process.

- usual:   pytorch/examples style: a DataLoader over the tensors, shuffle=True, the
           model as a classic nn.Module, torch's default threads;
- tuned:   preloaded tensors, randperm index slices, channels_last for convolutions;
- afbench: the engine's own epoch loop (afbench.engine.train), bookkeeping included;
- afbench-sweep (LeNet and MLP): the same loop as ``afbench run`` executes a sweep:
           the workers x threads its scheduler calibrates (calibrate.plan) train at
           once, and each run's share of the wall clock is reported. This is a
           sweep's throughput, not a single run's speed: one run alone gets the
           afbench line.

Each case runs a fixed number of training steps per implementation, alternating
the implementations and repeating, and takes the median (the machines are shared
and noisy: compare only numbers from one run). A matrix-multiply measurement
taken in the same run gives the arithmetic limit: FLOPs per training image
(3x the forward multiply-adds x 2) / measured FLOP/s.

The latency cases time batch-1 inference of LeNet and the MLP on 2,000 MNIST test
images with afbench's measurement (a synchronised timer per image, median)
against a bare loop of the same model (one timer around the loop, mean): the
ratio shows how much of afbench's figure is the measurement itself.

The lenet-variants case (not run by default: compiling takes about a minute) times
the tuned LeNet step in fp32 eager mode, under torch.compile (compile time printed
apart) and under bf16 autocast: the alternatives afbench's CPU path leaves out.

The resnet20 and vit cases (CIFAR-10 JPEG copy, 1,024 training images, batch 128)
report s_per_epoch for a full 50,000-image epoch, extrapolated from the timed steps;
their "usual" line is the same model in a DataLoader loop.

Usage: python bench/speed.py [--data-dir ../shared/data] [--repeats 3] [--cases lenet,mlp,...,latency]
                            [--device cpu|cuda]
On --device cuda the data, models and matmul live on the GPU, every clock read follows
torch.cuda.synchronize(), the "usual" loop moves each DataLoader batch to the GPU, and
the afbench-sweep lines (CPU worker processes) are left out.
Prints one machine-readable line per case and implementation:
  case=lenet-mnist impl=afbench s_per_epoch=... samples_per_s=... vs_usual=... vs_tuned=... limit_fraction=...
  case=lenet-mnist impl=afbench-sweep workers=2 threads=1 how=calibrated
  case=latency-lenet impl=bare ms_per_sample_mean=... afbench_vs_bare=...
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from afbench import data, models
from afbench.config import RunConfig
from afbench.data import Split
from afbench.engine import train as engine
from afbench.sweep import Runtime, calibrate

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


class UsualLeNet(nn.Module):
    """The pytorch/examples MNIST net, as people write it."""

    def __init__(self, act=F.relu):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 10, 5), nn.Conv2d(10, 20, 5)
        self.conv2_drop, self.fc1, self.fc2 = nn.Dropout2d(), nn.Linear(320, 50), nn.Linear(50, 10)
        self.act = act

    def forward(self, x):
        x = self.act(F.max_pool2d(self.conv1(x), 2))
        x = self.act(F.max_pool2d(self.conv2_drop(self.conv2(x)), 2))
        x = self.act(self.fc1(x.flatten(1)))
        return self.fc2(F.dropout(x, training=self.training))


class UsualMLP(nn.Module):
    def __init__(self, act=F.relu):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(784, 128), nn.Linear(128, 64), nn.Linear(64, 10)
        self.act = act

    def forward(self, x):
        return self.fc3(self.act(self.fc2(self.act(self.fc1(x.flatten(1))))))


def forward_macs(model: nn.Module, shape) -> int:
    """Multiply-adds of one forward pass per image (conv and linear layers; the ViT's
    attention products, about 11% of its multiply-adds, are left out)."""
    total = [0]

    def hook(module, inputs, out):
        if isinstance(module, nn.Conv2d):
            per_out = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
            total[0] += out[0].numel() * per_out
        elif isinstance(module, nn.Linear):  # once per position: per token in the ViT
            total[0] += module.in_features * out[0].numel()

    hooks = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    model.eval()(torch.zeros(1, *shape))
    for h in hooks:
        h.remove()
    return total[0]


def device_name(text: str) -> str:
    """cpu, cuda or cuda:N, for argparse."""
    if text in ("cpu", "cuda") or (text.startswith("cuda:") and text[5:].isdigit()):
        return text
    raise argparse.ArgumentTypeError(f"expected cpu, cuda or cuda:N, got {text!r}")


def sync(device) -> None:
    """Wait for the device's queued work: every clock read on a GPU follows one."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def matmul_flops(threads: int, size: int = 1024, repeats: int = 20, device="cpu") -> float:
    """fp32 matrix-multiply FLOP/s on ``device`` (on a CPU, at the process's torch threads)."""
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    torch.mm(a, b)
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, b)
    sync(device)
    return 2 * size**3 * repeats / (time.perf_counter() - start)


def usual_steps(model, x, y, batch, steps):
    """A DataLoader over the tensors in host memory, each batch moved to ``x``'s device."""
    device = x.device
    model = model.to(device)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x.cpu(), y.cpu()), batch_size=batch,
                                         shuffle=True)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    sync(device)
    start = time.perf_counter()
    for i, (xb, yb) in enumerate(loader):
        if i == steps:
            break
        loss = F.cross_entropy(model(xb.to(device)), yb.to(device))
        opt.zero_grad()
        loss.backward()
        opt.step()
    sync(device)
    return time.perf_counter() - start


def eager_loss(model, xb, yb):
    return F.cross_entropy(model(xb), yb)


def tuned_steps(model, x, y, batch, steps, conv, loss_fn=eager_loss, context=contextlib.nullcontext):
    """The tuned plain loop; ``loss_fn`` and ``context`` (e.g. autocast) for the variants."""
    model = model.to(x.device)
    if conv:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    sync(x.device)
    start = time.perf_counter()
    for i, idx in enumerate(torch.randperm(len(y), device=x.device).split(batch)):
        if i == steps:
            break
        with context():
            loss = loss_fn(model, x[idx], y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync(x.device)
    return time.perf_counter() - start


def afbench_steps(config, prepared, steps):
    return engine.time_training_steps(config, prepared, steps)


def _sweep_worker(config, cut, steps, threads, barrier, results):
    """One of the sweep's workers: warm up, wait for the others, then train ``steps`` steps."""
    torch.set_num_threads(threads)
    engine.time_training_steps(config, cut, 3)
    barrier.wait()
    results.put(engine.time_training_steps(config, cut, steps))


def sweep_schedule(config, prepared) -> dict:
    """The workers x threads afbench's scheduler picks for a sweep of this model
    (calibrated as ``afbench run`` does, for a sweep of eight 10-epoch runs)."""
    return calibrate.plan(Runtime(), config.with_(epochs=10), prepared, pending=8)


def afbench_sweep_steps(config, prepared, steps, schedule) -> float:
    """Seconds per ``steps`` steps of one run while afbench trains runs concurrently
    as ``schedule`` says: the workers start together and the slowest one's time,
    divided by the number of workers, is each run's share of the wall clock."""
    if schedule["workers"] == 1:
        threads = torch.get_num_threads()
        torch.set_num_threads(schedule["threads"])
        try:
            return engine.time_training_steps(config, prepared, steps)
        finally:
            torch.set_num_threads(threads)
    n, b = steps * config.batch_size, config.batch_size  # the workers get only what they train on
    cut = replace(prepared, train=Split(prepared.train.x[:n].clone(), prepared.train.y[:n].clone()),
                  test=Split(prepared.test.x[:b].clone(), prepared.test.y[:b].clone()), valid=None)
    ctx = multiprocessing.get_context("spawn")  # no inherited torch thread pools
    barrier, results = ctx.Barrier(schedule["workers"]), ctx.Queue()
    workers = [ctx.Process(target=_sweep_worker, args=(config, cut, steps, schedule["threads"], barrier, results))
               for _ in range(schedule["workers"])]
    for worker in workers:
        worker.start()
    seconds = [results.get() for _ in workers]
    for worker in workers:
        worker.join()
    return max(seconds) / len(workers)


def alternate(impls: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each implementation: one untimed warm-up each, then
    ``repeats`` rounds alternating them, so drift hits every implementation alike."""
    for run in impls.values():
        run()
    times = {name: [] for name in impls}
    for _ in range(repeats):
        for name, run in impls.items():
            times[name].append(run())
    return {name: statistics.median(t) for name, t in times.items()}


def run_case(name, prepared, model_name, activation, batch, steps, repeats, flops_per_s, sweep=False,
             epoch_size=None):
    """``epoch_size``: the images one epoch counts (default: the prepared training split)."""
    x, y = prepared.train.x, prepared.train.y
    epoch = epoch_size or len(y)
    conv = model_name != "mlp"
    act = {"relu": F.relu}.get(activation)
    usual_model = {"lenet": lambda: UsualLeNet(act or models.build("lenet", activation, (1, 28, 28), 10).act1),
                   "mlp": lambda: UsualMLP(act or models.build("mlp", activation, (1, 28, 28), 10).act1),
                   "vgg11": lambda: models.build("vgg11", activation, prepared.input_shape, 10),
                   "resnet20": lambda: models.build("resnet20", activation, prepared.input_shape, 10),
                   "vit": lambda: models.build("vit", activation, prepared.input_shape, 10)}[model_name]
    tuned_model = lambda: models.build(model_name, activation, prepared.input_shape, prepared.num_classes)
    config = RunConfig(model=model_name, activation=activation, batch_size=batch, dataset=prepared.name)
    impls = {"usual": lambda: usual_steps(usual_model(), x, y, batch, steps),
             "tuned": lambda: tuned_steps(tuned_model(), x, y, batch, steps, conv),
             "afbench": lambda: afbench_steps(config, prepared, steps)}
    if sweep and x.device.type != "cpu":
        print(f"case={name} impl=afbench-sweep skipped: CPU worker processes only", flush=True)
    elif sweep:
        schedule = sweep_schedule(config, prepared)
        print(f"case={name} impl=afbench-sweep workers={schedule['workers']} threads={schedule['threads']} "
              f"how={schedule['how']}", flush=True)
        impls["afbench-sweep"] = lambda: afbench_sweep_steps(config, prepared, steps, schedule)
    medians = alternate(impls, repeats)
    per_epoch = {k: v * epoch / (steps * batch) for k, v in medians.items()}
    flops_per_image = 3 * 2 * forward_macs(tuned_model(), prepared.input_shape)
    limit = flops_per_image * epoch / flops_per_s
    for k in impls:
        print(f"case={name} impl={k} epoch_images={epoch} s_per_epoch={per_epoch[k]:.3f} "
              f"samples_per_s={epoch / per_epoch[k]:.0f} "
              f"vs_usual={per_epoch['usual'] / per_epoch[k]:.2f} vs_tuned={per_epoch['tuned'] / per_epoch[k]:.2f} "
              f"limit_s_per_epoch={limit:.3f} limit_fraction={limit / per_epoch[k]:.2f}", flush=True)


def variants_case(prepared, steps, repeats):
    """LeNet's tuned step in fp32 eager, under torch.compile and under bf16 autocast:
    the alternatives afbench's CPU path does not take, measured."""
    x, y = prepared.train.x, prepared.train.y
    model = models.build("lenet", "relu", prepared.input_shape, prepared.num_classes)
    compiled = torch.compile(eager_loss)
    bf16 = lambda: torch.autocast(x.device.type, dtype=torch.bfloat16)
    start = time.perf_counter()
    tuned_steps(model, x, y, 128, 3, True, compiled)
    print(f"case=lenet-variants impl=compile compile_s={time.perf_counter() - start:.1f}", flush=True)
    medians = alternate({"eager": lambda: tuned_steps(model, x, y, 128, steps, True),
                         "compiled": lambda: tuned_steps(model, x, y, 128, steps, True, compiled),
                         "bf16": lambda: tuned_steps(model, x, y, 128, steps, True, context=bf16)}, repeats)
    for impl, seconds in medians.items():
        print(f"case=lenet-variants impl={impl} ms_per_step={seconds / steps * 1e3:.2f} "
              f"vs_eager={medians['eager'] / seconds:.2f}", flush=True)


def bare_latency_ms(model, split, samples: int) -> float:
    """Batch-1 inference with nothing around it: one timer over the whole loop."""
    model.eval()
    inputs = [split.x[i:i + 1] for i in range(samples)]
    with torch.inference_mode():
        for x in inputs[:10]:
            model(x)
        sync(split.x.device)
        start = time.perf_counter()
        for x in inputs:
            model(x)
        sync(split.x.device)
    return (time.perf_counter() - start) / samples * 1e3


def latency_case(name, prepared, model_name, samples, repeats):
    """afbench's batch-1 latency (a timer per sample, median) against a bare loop."""
    model = models.build(model_name, "relu", prepared.input_shape, prepared.num_classes).to(prepared.test.x.device)
    if model_name != "mlp":
        model = model.to(memory_format=torch.channels_last)
    afbench_ms, bare_ms = [], []
    for _ in range(repeats):  # alternate
        afbench_ms.append(engine.measure_latency(model, prepared.test, samples)["ms_per_sample_median"])
        bare_ms.append(bare_latency_ms(model, prepared.test, samples))
    afbench, bare = statistics.median(afbench_ms), statistics.median(bare_ms)
    print(f"case={name} impl=afbench ms_per_sample_median={afbench:.4f}", flush=True)
    print(f"case={name} impl=bare ms_per_sample_mean={bare:.4f} afbench_vs_bare={afbench / bare:.2f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA), help="holds mnist/ and cifar10-jpeg.tar.gz")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=100, help="training steps per timing (default: %(default)s)")
    parser.add_argument("--cases", default="lenet,mlp,relu_softsign,relu_softplus,vgg11,resnet20,vit,latency")
    parser.add_argument("--device", default="cpu", type=device_name, help="cpu or cuda: where the data, models and matmul run; "
                        "the afbench-sweep lines are CPU-only (default: %(default)s)")
    parser.add_argument("--cifar-subset", type=int, default=1024, help="CIFAR-10 JPEG training images loaded for "
                        "the vgg11, resnet20 and vit cases (default: %(default)s)")
    args = parser.parse_args()
    threads = torch.get_num_threads()  # torch's default: what the usual loop gets too
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("speed.py: --device cuda, but torch sees no CUDA device")
    flops = matmul_flops(threads, device=args.device)
    print(f"# torch {torch.__version__}, {threads} threads, device {args.device}, matmul {flops / 1e9:.1f} GFLOP/s "
          f"(fp32, 1024^2)")
    cases = args.cases.split(",")
    if {"lenet", "mlp", "relu_softsign", "relu_softplus", "latency", "lenet-variants"} & set(cases):
        mnist = data.prepare(data.load("mnist", Path(args.data_dir) / "mnist", download=False), device=args.device)
        if "lenet" in cases:
            run_case("lenet-mnist", mnist, "lenet", "relu", 128, args.steps, args.repeats, flops, sweep=True)
        if "mlp" in cases:
            run_case("mlp-mnist", mnist, "mlp", "relu", 64, args.steps * 2, args.repeats, flops, sweep=True)
        for act in ("relu_softsign", "relu_softplus"):
            if act in cases:
                run_case(f"lenet-{act}", mnist, "lenet", act, 128, args.steps, args.repeats, flops)
        if "lenet-variants" in cases:  # not in the default list: compiling takes about a minute
            variants_case(mnist, args.steps, args.repeats)
        if "latency" in cases:
            for model_name in ("lenet", "mlp"):
                latency_case(f"latency-{model_name}", mnist, model_name, 2000, args.repeats)
    if {"vgg11", "resnet20", "vit"} & set(cases):
        cifar = data.prepare(data.load(f"imagefolder:{Path(args.data_dir) / 'cifar10-jpeg.tar.gz'}"),
                             train_subset=args.cifar_subset, device=args.device)
        steps = max(1, min(4, args.cifar_subset // 128))
        if "vgg11" in cases:
            run_case("vgg11-cifar10jpeg", cifar, "vgg11", "relu", 128, steps, args.repeats, flops)
        # s_per_epoch of these two: a full CIFAR-10 epoch (50,000 images), from the timed steps
        if "resnet20" in cases:  # He et al. 2016: batch 128, ReLU
            run_case("resnet20-cifar10jpeg", cifar, "resnet20", "relu", 128, steps, args.repeats, flops,
                     epoch_size=50_000)
        if "vit" in cases:  # its native GELU
            run_case("vit-cifar10jpeg", cifar, "vit", "gelu", 128, steps, args.repeats, flops, epoch_size=50_000)


if __name__ == "__main__":
    main()
