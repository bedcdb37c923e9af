"""The CUDA check: does duvae agree with itself on CPU and GPU, and how fast is it beside the paper's
code on the same GPU? One script, under 10 minutes on one modern GPU; exits cleanly without CUDA.

    python benchmarks/gpu_check.py                 # everything; JSON to gpu_check.json
    python benchmarks/gpu_check.py --skip-reference --pairs 1

1. Agreement (same weights, same batch, same noise; TF32 off): one DU-VAE training step at the
   short-yelp size on the CPU and on CUDA, fp32: the loss and every gradient (relative error), and
   the step in bf16 on CUDA for scale; IW-NLL (K = 100) of 20 short-yelp test sentences under a
   fixed model: the largest per-sentence difference. Tolerances: loss and gradients 1e-4 relative,
   IW-NLL 1e-3 nats per sentence (float32 sums of ~10 token log-probabilities in another order).
2. Training throughput (sentences/s, batch 32, the 10,000 short-yelp train sentences, steps as in
   vs_reference.py) at the short-yelp and yelp sizes in fp32, TF32 and bf16; IW-NLL K = 500 on the
   first 100 test sentences (s/sentence), both sizes.
3. The paper's code on the same GPU: ../shared/reference/reference_bench.py --device cuda (train
   and iw, both sizes), interleaved with duvae's fp32 runs, --pairs pairs each.

Every measurement runs in a fresh process (vs_reference.py's). The tables go to stdout as markdown,
the raw numbers to --out as JSON.

    python benchmarks/gpu_check.py --rehearse      # on a CPU machine, before a GPU session

`--rehearse` runs every part of the script on the CPU (the "GPU" side is the CPU too, TF32 is
plain fp32) with a few steps, sentences and samples: it checks the script end to end in a couple
of minutes so that the GPU's time is not lost to a crash. Its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import vs_reference as vs  # noqa: E402  (the measuring functions and the data readers)

TRAIN_TOLERANCE, IW_TOLERANCE = 1e-4, 1e-3


def agreement_train(device: str = "cuda", sentences: int = 32) -> dict:
    import numpy as np
    import torch

    from duvae_cli.data.batching import make_batch, plan_batches, sentence_lengths
    from duvae_cli.config.build import build_text_model
    from duvae_cli.config.resolve import resolve_config

    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    vocab = vs.official_vocab()
    tokens, offsets = vs.read_split(vs.DATA / "short_yelp.train.10000.txt", vocab)
    config = resolve_config("short-yelp", "du", dict(embed_dim=128, hidden_dim=512, latent_dim=32, p=1.0,
                                                      dropout_in=0.0, dropout_out=0.0, precision="fp32"))
    torch.manual_seed(0)
    cpu = build_text_model(config, len(vocab)).train()
    gpu = copy.deepcopy(cpu).to(device)
    plan = plan_batches(sentence_lengths(offsets), sentences, np.random.default_rng(0))
    batch = make_batch(tokens, offsets, plan[0])
    eps = torch.randn(len(batch), config.latent_dim)
    out_cpu = cpu(batch, 1.0, eps)
    out_cpu.loss.backward()
    out_gpu = gpu(batch.to(device), 1.0, eps.to(device))
    out_gpu.loss.backward()
    errors = {name: float((a.grad - b.grad.cpu()).norm() / a.grad.norm().clamp_min(1e-30))
              for (name, a), (_, b) in zip(cpu.named_parameters(), gpu.named_parameters()) if a.grad is not None}
    loss_cpu, loss_gpu = float(out_cpu.loss.detach()), float(out_gpu.loss.detach())
    loss_error = abs(loss_gpu - loss_cpu) / abs(loss_cpu)
    bf16 = copy.deepcopy(cpu).to(device)
    with torch.autocast(device, dtype=torch.bfloat16):
        loss_bf16 = float(bf16(batch.to(device), 1.0, eps.to(device)).loss.detach())
    worst = max(errors, key=errors.get)
    return dict(loss_cpu=loss_cpu, loss_cuda=loss_gpu, loss_rel_error=loss_error,
                grad_max_rel_error=errors[worst], grad_worst=worst, loss_cuda_bf16=loss_bf16,
                loss_bf16_rel_error=abs(loss_bf16 - loss_cpu) / abs(loss_cpu),
                ok=loss_error <= TRAIN_TOLERANCE and errors[worst] <= TRAIN_TOLERANCE, tolerance=TRAIN_TOLERANCE)


def agreement_iw(device: str = "cuda", sentences: int = 20, iw_samples: int = 100) -> dict:
    import torch

    from duvae_cli.data.batching import TextBatches
    from duvae_cli.metrics import EvalOptions, score_examples
    from duvae_cli.config.build import build_text_model
    from duvae_cli.config.resolve import resolve_config

    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    vocab = vs.official_vocab()
    split = vs.Split(*vs.read_split(vs.DATA / "short_yelp.test.txt", vocab, sentences))
    config = resolve_config("short-yelp", "du", dict(embed_dim=128, hidden_dim=512, latent_dim=32))
    torch.manual_seed(0)
    cpu = build_text_model(config, len(vocab)).eval()
    gpu = copy.deepcopy(cpu).to(device)
    options = EvalOptions(iw_samples=iw_samples)
    a = score_examples(cpu, TextBatches(split), options)["iw_nll"]
    b = score_examples(gpu, TextBatches(split), options)["iw_nll"]
    worst = float(abs(a - b).max())
    return dict(sentences=sentences, iw_samples=iw_samples, mean_iw_nll_cpu=float(a.mean()),
                mean_iw_nll_cuda=float(b.mean()), max_abs_difference=worst, ok=worst <= IW_TOLERANCE,
                tolerance=IW_TOLERANCE)


def throughput(args) -> list[dict]:
    rows = []
    for size in ("short-yelp", "yelp"):
        for pair in range(args.pairs):
            for precision in ("fp32", "tf32", "bf16"):
                if precision == "fp32" and not args.skip_reference:
                    ref = vs.run_side("reference", f"train:{size}", args, device=args.device)
                    rows.append(dict(workload=f"train:{size}", code="reference", pair=pair, precision="fp32",
                                     value=ref["sentences_per_s"]))
                got = vs.run_side("duvae", f"train:{size}", args, device=args.device, precision=precision)
                rows.append(dict(workload=f"train:{size}", code="duvae", pair=pair, precision=precision,
                                 value=got["sentences_per_s"]))
                print(json.dumps(rows[-1]), flush=True)
        for pair in range(args.pairs):
            if not args.skip_reference:
                ref = vs.run_side("reference", f"iw:{size}", args, device=args.device)
                rows.append(dict(workload=f"iw:{size}", code="reference", pair=pair, precision="fp32",
                                 value=ref["s_per_sentence"]))
            got = vs.run_side("duvae", f"iw:{size}", args, device=args.device)
            rows.append(dict(workload=f"iw:{size}", code="duvae", pair=pair, precision="fp32",
                             value=got["s_per_sentence"]))
            print(json.dumps(rows[-1]), flush=True)
    return rows


def markdown(info: dict, train: dict, iw: dict, rows: list[dict]) -> str:
    lines = [f"GPU: {info['gpu']} (compute capability {info['capability']}), torch {info['torch']}, "
             f"CUDA {info['cuda']}, {info['date']}", "",
             f"- training step, CPU vs CUDA fp32: loss {train['loss_cpu']:.6f} vs {train['loss_cuda']:.6f} "
             f"(relative {train['loss_rel_error']:.1e}), gradients at most {train['grad_max_rel_error']:.1e} "
             f"relative ({train['grad_worst']}); tolerance {train['tolerance']:g}: "
             f"{'agree' if train['ok'] else 'DISAGREE'}; CUDA bf16 loss {train['loss_cuda_bf16']:.6f} "
             f"({train['loss_bf16_rel_error']:.1e} relative)",
             f"- IW-NLL (K = {iw['iw_samples']}, {iw['sentences']} sentences) CPU vs CUDA: largest difference "
             f"{iw['max_abs_difference']:.2e} nats; tolerance {iw['tolerance']:g}: "
             f"{'agree' if iw['ok'] else 'DISAGREE'}", "",
             "| workload | paper's code (fp32) | duvae fp32 | duvae TF32 | duvae bf16 | best duvae / paper |",
             "|---|---|---|---|---|---|"]
    for workload in dict.fromkeys(r["workload"] for r in rows):
        def median(code, precision):
            values = [r["value"] for r in rows if r["workload"] == workload and r["code"] == code
                      and r["precision"] == precision]
            return statistics.median(values) if values else None
        ref = median("reference", "fp32")
        ours = {p: median("duvae", p) for p in ("fp32", "tf32", "bf16")}
        iw = workload.startswith("iw")
        present = [v for v in ours.values() if v is not None]
        best = (min(present) if iw else max(present)) if present else None
        ratio = "-" if ref is None or best is None else f"{(ref / best if iw else best / ref):.2f}x"
        cell = lambda v: "-" if v is None else (f"{v:.4f} s/sent" if iw else f"{v:.0f} sent/s")  # noqa: E731
        lines.append(f"| {workload} | {cell(ref)} | {cell(ours['fp32'])} | {cell(ours['tf32'])} | "
                     f"{cell(ours['bf16'])} | {ratio} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1)
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"))
    parser.add_argument("--rehearse", action="store_true", help="every part on the CPU, tiny workloads")
    args = parser.parse_args()
    # the throughput workloads (vs_reference's), and the agreement checks' sizes
    args.device, args.sentences, args.iw_samples, args.steps, args.warmup = "cuda", 100, 500, None, None
    args.images = 2  # what vs_reference.run_side reads for its image workloads (unused by the text ones here)
    sizes = dict(train=dict(sentences=32), iw=dict(sentences=20, iw_samples=100))
    import torch

    if args.rehearse:  # the reference needs >= 10 IW sentences
        args.device, args.sentences, args.iw_samples, args.steps, args.warmup = "cpu", 10, 8, 3, 2
        sizes = dict(train=dict(sentences=4), iw=dict(sentences=3, iw_samples=4))
    elif not torch.cuda.is_available():
        print(json.dumps({"skipped": "no CUDA device"}))
        return 0
    if not (vs.DATA / "vocab.txt").exists():
        print(json.dumps({"skipped": f"{vs.DATA} is absent"}))
        return 0
    on_gpu = args.device == "cuda"
    info = dict(gpu=torch.cuda.get_device_name(0) if on_gpu else "none (rehearsal on the CPU)",
                capability=".".join(map(str, torch.cuda.get_device_capability(0))) if on_gpu else "-",
                torch=torch.__version__, cuda=torch.version.cuda,
                date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    print(json.dumps(info), flush=True)
    train, iw = agreement_train(args.device, **sizes["train"]), agreement_iw(args.device, **sizes["iw"])
    print(json.dumps(dict(train=train, iw=iw)), flush=True)
    rows = throughput(args)
    table = markdown(info, train, iw, rows)
    args.out.write_text(json.dumps(dict(info=info, train=train, iw=iw, rows=rows, table=table), indent=1))
    print(table)
    return 0 if train["ok"] and iw["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
