set -x
for m in lenet5:mnist:/work/shared/data/mnist cifar10_quick:cifar10:/work/shared/data/cifar10 mobilenet_v1_0.25_128:images:/work/shared/data/imagenet/val1300:/work/shared/data/imagenet/val1300_labels.txt; do
  M=${m%%:*}; T=${m#*:}
  ./sieve3 speculate --package pkgs/$M.sieve --dataset $T --model /work/shared/models/$M/model.onnx --plots plots-test3/$M --json > $M.spec3.json 2>> respec.err
done
