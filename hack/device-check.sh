#!/usr/bin/env bash
# The NVML check for a machine with an NVIDIA GPU (the device machine a
# session may be lent; it has the driver but no Go): lists the GPUs as
# Strata's NVML backend sees them next to nvidia-smi's view and checks
# that every GPU nvidia-smi reports is there with its UUID and memory,
# and no other.
# It only reads: no MIG change, no reset, no MPS daemon.
#
#   make build && run: bash hack/device-check.sh   (carry bin/strata)
#
# Results go to $OUT (or ./device-check) and the exit status says whether
# they agree.
set -u
out=${OUT:-device-check}
mkdir -p "$out"
strata=${STRATA:-bin/strata}

echo "device-check: nvidia-smi's view"
nvidia-smi --query-gpu=index,name,uuid,memory.total,mig.mode.current --format=csv,noheader,nounits \
  | tee "$out/nvidia-smi.csv" || { echo "device-check: nvidia-smi failed: no NVIDIA driver here"; exit 2; }

echo "device-check: strata gpu list --gpu-backend nvml"
"$strata" gpu list --gpu-backend nvml | tee "$out/strata-gpu-list.txt" || { echo "device-check: strata's NVML backend failed"; exit 1; }
"$strata" gpu list --gpu-backend nvml -o yaml > "$out/strata-devices.yaml" || exit 1

fail=0
while IFS=, read -r index name uuid mem mig; do
  uuid=$(echo "$uuid" | xargs) index=$(echo "$index" | xargs) mem=$(echo "$mem" | xargs) name=$(echo "$name" | xargs)
  # nvidia-smi gives MiB; strata prints the quantity (e.g. 81559Mi or 80Gi).
  line=$(grep -E "^gpu-$index[[:space:]]" "$out/strata-gpu-list.txt" || true)
  want_mem="${mem}Mi"
  [ $((mem % 1024)) -eq 0 ] && want_mem="$((mem / 1024))Gi"
  if [[ "$line" != *"$uuid"* || "$line" != *" $want_mem "* ]]; then
    echo "device-check: GPU $index ($name, $uuid, $want_mem) not listed as nvidia-smi reports it: '$line'"
    fail=1
  fi
done < "$out/nvidia-smi.csv"
smi_count=$(grep -c . "$out/nvidia-smi.csv")
strata_count=$(grep -c '^gpu-' "$out/strata-gpu-list.txt")
if [ "$smi_count" != "$strata_count" ]; then
  echo "device-check: nvidia-smi reports $smi_count GPUs, strata lists $strata_count"
  fail=1
fi
[ "$fail" = 0 ] && echo "device-check: every GPU nvidia-smi reports is listed with its UUID and memory"
exit "$fail"
