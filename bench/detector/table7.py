#!/usr/bin/env python3
"""Session 7 tables (docs/DETECTOR.md "Session 7", docs/SPECULATIVE.md "Session 7").

Reads the outputs of bench/search/run7.sh and bench/detector/run7.sh (R = /work/runs/s7 unless
given) and prints markdown:

    python3 bench/detector/table7.py [R] detector    # the detector table (all rows; acceptance)
    python3 bench/detector/table7.py [R] packages    # per model x variant: bits, bytes, top-1
    python3 bench/detector/table7.py [R] diag        # per row that misses: the numbers behind "why"
    python3 bench/detector/table7.py [R] times       # wall times of design, eval, calibrate, speculate
    python3 bench/detector/table7.py [R] all         # all four

Acceptance (issue 4, normal mode only): final top-1 >= original top-1 - 0.1 point (compared on
counts: final_correct - original_correct >= -0.001 x images) AND success rate >= 80%.
"""
import json
import os
import subprocess
import sys

MODELS = ["lenet5", "cifar10_quick", "mobilenet_v1_0.25_128", "nin_cifar10",
          "mobilenet_v2_1.0_224"]
SHARES = ["0", "0.5"]
VARIANTS = ["exact", "accurate", "approximate"]


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def pct(x):
    return f"{100 * x:.2f}%"


def thr(t):
    return "inf" if t == "inf" else f"{t:.4f}"


def accept(row):
    """(ok, reason) for a normal-mode row."""
    t = row["tally"]
    ok_acc = (t["final_correct"] - t["original_correct"]) >= -0.001 * t["images"] - 1e-9
    ok_succ = row["success_rate"] >= 0.8 - 1e-12
    if ok_acc and ok_succ:
        return True, "yes"
    why = [n for n, ok in (("accuracy", ok_acc), ("success", ok_succ)) if not ok]
    return False, "NO: " + ", ".join(why)


def detector(R):
    out = ["| model | catch share | variant | mode (target) | threshold t | val P_r | test P_r "
           "| success (test) | final top-1 | original top-1 | speculative alone "
           "| final - original (pts) | correctable caught / all | acceptance (normal) |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for m in MODELS:
        for cs in SHARES:
            s = load(f"{R}/detector/{m}_cs{cs}.spec.json")
            if s is None:
                continue
            rows = sorted(s["rows"], key=lambda r: (VARIANTS.index(r["variant"]),
                                                      r["mode"] != "normal"))
            for r in rows:
                t = r["tally"]
                d = 100 * (t["final_correct"] - t["original_correct"]) / t["images"]
                acc = accept(r)[1] if r["mode"] == "normal" else ""
                allc = r["correctable_caught"] + r["correctable_missed"]
                out.append(
                    f"| {m} | {cs} | {r['variant']} | {r['mode']} ({r['target']}) "
                    f"| {thr(r['threshold'])} | {pct(r['val_replay_rate'])} | {pct(r['replay_rate'])} "
                    f"| {pct(r['success_rate'])} | {pct(r['final_top1'])} | {pct(r['original_top1'])} "
                    f"| {pct(r['speculative_top1'])} | {d:+.2f} | {r['correctable_caught']} / {allc} "
                    f"| {acc} |")
    return "\n".join(out)


def inspect(R, m):
    p = f"{R}/packages/{m}.sieve"
    b = f"{R}/bin/sieve"
    if not os.path.exists(p):
        return None
    r = subprocess.run([b, "inspect", "--json", p], capture_output=True, text=True)
    if r.returncode != 0:
        return None
    d = json.loads(r.stdout)
    return d.get("meta", d)


def packages(R):
    out = ["| model | val images (design) | test images | variant | avg weight bits | avg act bits "
           "| variant weight bytes | package bytes | ONNX bytes | val top-1 (orig -> variant) "
           "| val agreement | test top-1 orig -> variant (pts) | recovery widenings |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for m in MODELS:
        d = load(f"{R}/packages/{m}.design.json")
        if d is None:
            continue
        t = load(f"{R}/packages/{m}.test.json")
        tr = {r["variant"]: r for r in t["results"]} if t else {}
        meta = inspect(R, m)
        vi = {v["variant"]: v for v in meta["variants"]} if meta else {}
        n = d["images"]
        for v in d["variants"]:
            name = v["variant"]
            ag = vi.get(name, {}).get("agree")
            ags = f"{100 * ag / n:.1f}%" if ag is not None else "n/a"
            if tr:
                o, x = tr["original"], tr[name]
                tt = (f"{100 * o['top1']:.2f} -> {100 * x['top1']:.2f} "
                      f"({100 * (x['correct'] - o['correct']) / o['images']:+.2f})")
                ti = f"{o['images']:,}"
            else:
                tt, ti = "n/a", "n/a"
            # `recovered` lists the widenings, then (adopt_dominating) one "adopted ..." line
            wid = [x for x in v["recovered"] if not x.startswith("adopted")]
            ado = [x.split(":")[0].replace("adopted the ", "adopted ")
                   for x in v["recovered"] if x.startswith("adopted")]
            rec = f"{len(wid)}" + "".join(f" + {a}" for a in ado)
            out.append(
                f"| {m} | {n:,} | {ti} | {name} | {v['avg_weight_bits']:.2f} "
                f"| {v['avg_activation_bits']:.2f} | {v['weight_bytes']:,} | {d['package_bytes']:,} "
                f"| {d['onnx_bytes']:,} | {100 * d['baseline_top1']:.2f} -> {100 * v['val_top1']:.2f} "
                f"| {ags} | {tt} | {rec} |")
    return "\n".join(out)


def times(R):
    out = ["| model | design (real / user) | new evaluations | test eval | calibrate cs 0 / 0.5 "
           "| speculate cs 0 / 0.5 | load average before design -> after detector |",
           "|---|---|---|---|---|---|---|"]

    def parse(path):
        res = {}
        try:
            for line in open(path):
                k, v = line.split(":", 1)
                f = v.split()
                res[k.strip()] = (float(f[0]), float(f[3]))
        except OSError:
            pass
        return res

    def la(line):
        return line.split("load average:")[-1].strip().split(",")[0] if line else "?"

    for m in MODELS:
        d = load(f"{R}/packages/{m}.design.json")
        if d is None:
            continue
        pt = parse(f"{R}/packages/{m}.time")
        dt = parse(f"{R}/detector/{m}.time")
        f = lambda k, tab: f"{tab[k][0]:.0f} s" if k in tab else "?"
        try:
            up0 = open(f"{R}/packages/{m}.uptime").read().splitlines()[0]
        except (OSError, IndexError):
            up0 = ""
        try:
            up1 = open(f"{R}/detector/{m}.uptime").read().splitlines()[-1]
        except (OSError, IndexError):
            up1 = ""
        des = pt.get("design")
        ds = f"{des[0]:.0f} s / {des[1]:.0f} s" if des else "?"
        out.append(
            f"| {m} | {ds} | {d['timing']['new_evaluations']} | {f('eval', pt)} "
            f"| {f(m + '_cs0 calibrate', dt)} / {f(m + '_cs0.5 calibrate', dt)} "
            f"| {f(m + '_cs0 speculate', dt)} / {f(m + '_cs0.5 speculate', dt)} "
            f"| {la(up0)} -> {la(up1)} |")
    return "\n".join(out)


def diag(R):
    """Numbers behind every row that misses the acceptance (normal mode)."""
    out = []
    for m in MODELS:
        for cs in SHARES:
            s = load(f"{R}/detector/{m}_cs{cs}.spec.json")
            c = load(f"{R}/detector/{m}_cs{cs}.cal.json")
            if s is None or c is None:
                continue
            for r in s["rows"]:
                if r["mode"] != "normal":
                    continue
                ok, why = accept(r)
                v = r["variant"]
                cv = c["variants"][v]
                ch = [x for x in cv["choices"] if x["target"] == r["target"]][0]
                vt, tt = ch["tally"], r["tally"]
                o = s["oracle_within_0_1pt"].get(v, {})
                n_val, n_test = c["images"], tt["images"]
                out.append(
                    f"- {m} cs {cs} {v}: {why}. "
                    f"val: variant {cv['correct']}/{n_val} vs original {c['original_correct']} "
                    f"({100 * (cv['correct'] - c['original_correct']) / n_val:+.2f} pt), correctable "
                    f"{cv['correctable']}, uncorrectable {cv['uncorrectable']}; t = {thr(r['threshold'])} "
                    f"replays {vt['replayed']} (caught {vt['correctable_caught']}/{cv['correctable']} "
                    f"correctable, {vt['uncorrectable_replayed']} uncorrectable, {vt['correct_replayed']} "
                    f"correct of which {vt['correct_replayed_broken']} broken). "
                    f"test: variant {tt['speculative_correct']}/{n_test} vs original "
                    f"{tt['original_correct']} ({100 * (tt['speculative_correct'] - tt['original_correct']) / n_test:+.2f} pt); "
                    f"replayed {tt['replayed']} ({pct(r['replay_rate'])}): correctable caught "
                    f"{tt['correctable_caught']}, above t (missed) {tt['correctable_missed']}; "
                    f"uncorrectable replayed {tt['uncorrectable_replayed']} / kept {tt['uncorrectable_kept']}; "
                    f"correct replayed {tt['correct_replayed']} (broken {tt['correct_replayed_broken']}); "
                    f"final {tt['final_correct']} ({100 * (tt['final_correct'] - tt['original_correct']) / n_test:+.2f} pt). "
                    f"oracle (test) t = {thr(o.get('threshold', float('nan')))}, replay "
                    f"{pct(o.get('replay_rate', float('nan')))}, final {pct(o.get('final_top1', float('nan')))}"
                    + ("" if not ok else " [passes]"))
    return "\n".join(out)


def main():
    args = sys.argv[1:]
    R = "/work/runs/s7"
    if args and os.path.isdir(args[0]):
        R = args.pop(0)
    what = args[0] if args else "all"
    parts = {"detector": detector, "packages": packages, "diag": diag, "times": times}
    if what == "all":
        for k in ("packages", "times", "detector", "diag"):
            print(f"<!-- {k} -->")
            print(parts[k](R))
            print()
    else:
        print(parts[what](R))


if __name__ == "__main__":
    main()
