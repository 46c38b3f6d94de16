#!/usr/bin/env python3
"""A stand-in for Nerfstudio's command-line tools (spec/nerfstudio.md), for Switchyard's tests: it parses the
flags the agent passes, prints what the real tools print (the step table, COLMAP's pose report, the "Training
Finished" panel), writes the files they write, fails the documented ways, and treats SIGINT as ns-train does
(traceback, exit 0, no final checkpoint). It trains nothing.

Knobs (environment): STANDIN_POSES=<percent> (COLMAP's share of posed images, default 100),
STANDIN_PROCESS=noimages (ns-process-data logs "No usable images" and exits 0 without transforms.json),
STANDIN_TRAIN=oom|nocuda (ns-train fails halfway / at start with exit 1), STANDIN_EXPORT=fail (ns-export exits 1),
STANDIN_STEP_DELAY=<seconds> (between table rows, default 0.005), STANDIN_HOLD=1 (ns-train prints its first row,
then waits for a signal instead of training on), STANDIN_MARK=<dir> (files recording each call and each SIGINT)."""
import json
import os
import signal
import sys
import time

tool = os.path.basename(sys.argv[0])
args = sys.argv[1:]
mark = os.environ.get("STANDIN_MARK")


def note(name, text=""):
    if mark:
        os.makedirs(mark, exist_ok=True)
        with open(os.path.join(mark, name), "a") as f:
            f.write(text + "\n")


def flags(arguments):
    """--key value pairs (a flag followed by another flag is a boolean flag); positional words in order."""
    values, words, i = {}, [], 0
    while i < len(arguments):
        a = arguments[i]
        if a.startswith("--"):
            if i + 1 < len(arguments) and not arguments[i + 1].startswith("--"):
                values[a[2:]] = arguments[i + 1]
                i += 2
            else:
                values[a[2:]] = True
                i += 1
        else:
            words.append(a)
            i += 1
    return values, words


def refuse(message):
    # tyro's parse error: a panel on stderr, exit 2.
    sys.stderr.write("╭─ Parsing error ─╮\n│ %s │\n╰─────────────────╯\n" % message)
    sys.exit(2)


note("calls", " ".join([tool] + args))

if tool == "nvidia-smi":
    print("NVIDIA Stand-in GPU, 81559, 70000")
    sys.exit(0)

if tool == "ns-process-data":
    values, words = flags(args)
    if not words or words[0] not in ("images", "video"):
        refuse("expected images or video")
    for required in ("data", "output-dir"):
        if required not in values:
            refuse("--%s is required" % required)
    allowed = {"data", "output-dir", "camera-type", "matching-method", "num-downscales", "sfm-tool", "gpu", "no-gpu", "verbose",
               "num-frames-target", "random-seed"}
    for key in values:
        if key not in allowed:
            refuse("unrecognized option --%s" % key)
    out = values["output-dir"]
    if os.environ.get("STANDIN_PROCESS") == "noimages":
        print("[bold red]No usable images in the data folder.")
        sys.exit(0)  # the documented quirk: errors are logged, the exit status is 0
    if words[0] == "images":
        count = sum(len(files) for _, _, files in os.walk(values["data"]))
    else:
        count = int(values.get("num-frames-target", 30))
    os.makedirs(os.path.join(out, "images"), exist_ok=True)
    for n in range(1, min(count, 5) + 1):
        open(os.path.join(out, "images", "frame_%05d.png" % n), "wb").write(b"\x89PNG frame")
    print("Starting with %d images" % count)
    poses = float(os.environ.get("STANDIN_POSES", "100"))
    if poses >= 100:
        print("[bold green]COLMAP found poses for all images, CONGRATS!")
    else:
        print("[bold red]COLMAP found poses for %.2f%% of the images" % poses)
    with open(os.path.join(out, "transforms.json"), "w") as f:
        json.dump({"camera_model": "OPENCV", "frames": [], "ply_file_path": "sparse_pc.ply"}, f)
    open(os.path.join(out, "sparse_pc.ply"), "wb").write(b"ply\nformat binary_little_endian 1.0\nend_header\n")
    print("🎉 🎉 🎉 All DONE 🎉 🎉 🎉")
    sys.exit(0)

if tool == "ns-train":
    if not args:
        refuse("a method is required")
    method, rest = args[0], args[1:]
    # Dataparser options come last, after the dataparser's name.
    parser_at = next((i for i, a in enumerate(rest) if a in ("nerfstudio-data", "colmap")), len(rest))
    values, words = flags(rest[:parser_at])
    for required in ("data", "output-dir", "experiment-name", "timestamp"):
        if required not in values:
            refuse("--%s is required" % required)
    if values.get("vis") != "tensorboard":
        refuse("the stand-in expects --vis tensorboard (headless)")
    total = int(values.get("max-num-iterations", "30000"))
    per_save = int(values.get("steps-per-save", "2000"))
    run = os.path.join(values["output-dir"], values["experiment-name"], method, values["timestamp"])
    models = os.path.join(run, "nerfstudio_models")
    os.makedirs(models, exist_ok=True)
    if os.environ.get("STANDIN_TRAIN") == "nocuda":
        sys.stderr.write("RuntimeError: Specified device type 'cuda' is not available; use --machine.device-type cpu\n")
        sys.exit(1)
    with open(os.path.join(run, "config.yml"), "w") as f:
        f.write("!!python/object:nerfstudio.engine.trainer.TrainerConfig\nmethod_name: %s\nmax_num_iterations: %d\n" % (method, total))
    print("Saving config to: %s/config.yml" % run)
    json.dump({"transform": [[1, 0, 0, 0]], "scale": 1.0}, open(os.path.join(run, "dataparser_transforms.json"), "w"))
    print("Saving checkpoints to: %s" % models)
    print("logging events to: %s" % run)

    def interrupted(signum, frame):
        note("sigint", tool)
        sys.stderr.write("Traceback (most recent call last):\nKeyboardInterrupt\n")
        sys.stdout.flush()
        os._exit(0)  # nerfstudio's launch() catches it: exit 0, no final checkpoint

    signal.signal(signal.SIGINT, interrupted)
    delay = float(os.environ.get("STANDIN_STEP_DELAY", "0.005"))
    print("Step (% Done)       Train Iter (time)    ETA (time)           Train Rays / Sec     ")
    print("-" * 83)
    rows = 10
    for row in range(1, rows + 1):
        step = max(0, total * row // rows - 1)
        if os.environ.get("STANDIN_TRAIN") == "oom" and row > rows // 2:
            sys.stderr.write("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n")
            sys.exit(1)
        print("%-20s %-20s %-20s %-20s" % ("%d (%.2f%%)" % (step, 100.0 * step / total), "12.345 ms", "1 m, %d s" % (rows - row), "72.68 K"))
        sys.stdout.flush()
        if os.environ.get("STANDIN_HOLD") == "1":
            while True:
                signal.pause()  # until SIGINT: the handler exits
        if step % per_save == 0 or step == total - 1:
            for old in os.listdir(models):
                os.remove(os.path.join(models, old))
            open(os.path.join(models, "step-%09d.ckpt" % step), "wb").write(b"checkpoint %d" % step)
        time.sleep(delay)
    print("╭─────────────── 🎉 Training Finished 🎉 ───────────────╮")
    print("│ Config File │ %s/config.yml │" % run)
    print("│ Checkpoint Directory │ %s │" % models)
    print("╰──────────────────────────────────────────────────────╯")
    sys.exit(0)

if tool == "ns-export":
    if not args:
        refuse("an export kind is required")
    kind, rest = args[0], args[1:]
    values, _ = flags(rest)
    if "load-config" not in values or not os.path.exists(values["load-config"]):
        refuse("--load-config must name a config.yml")
    if os.environ.get("STANDIN_EXPORT") == "fail":
        sys.stderr.write("Error: the model does not predict normals\n")
        sys.exit(1)
    names = {"gaussian-splat": "splat.ply", "pointcloud": "point_cloud.ply", "poisson": "poisson_mesh.ply", "tsdf": "tsdf_mesh.ply",
             "marching-cubes": "sdf_marching_cubes_mesh.ply"}
    out = values.get("output-dir", "exports")
    os.makedirs(out, exist_ok=True)
    name = values.get("output-filename", names.get(kind, "out.ply"))
    with open(os.path.join(out, name), "wb") as f:
        f.write(b"ply\nformat binary_little_endian 1.0\nelement vertex 2\nproperty float x\nproperty float y\nproperty float z\nend_header\n")
        f.write(bytes(24))
    print("Saved %s" % name)
    sys.exit(0)

refuse("unknown tool %s" % tool)
