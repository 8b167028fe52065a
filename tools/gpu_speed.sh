#!/usr/bin/env bash
# Issue 6 on one GPU, in one device-tool call (carry .gpu_wheels, made here with
# `pip download --no-deps -d .gpu_wheels ml-collections`): the defaults alone with the loop, a
# profile and the optimised HLO; from a warm cache; the ReLU derivative from the input (the
# defaults measured on 2026-11-27); fp32; VGG16's and the U-Net's inputs padded to 8
# channels, each and both; the loop without checkpoints; the U-Net alone; the old forms. One
# run at a time, about 6-7 minutes on an H200 (later runs reuse the autotuning results).
set -u
export PYTHONUNBUFFERED=1
python3 -c "import ml_collections" 2>/dev/null || python3 -m pip install -q --no-deps --no-index .gpu_wheels/*.whl
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv | tee "$OUT/gpu.txt"
python3 tools/gpu_sweep.py --out="$OUT" --timeout=200 \
  --runs=new_loop,new_warm,relu_input,new_fp32,vgg_pad8,unet_pad8,pad8,loop_no_ckpt,new_unet_only,old
head -40 "$OUT/profile_new.txt"
