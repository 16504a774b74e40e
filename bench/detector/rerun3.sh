./run.sh lenet5 /work/runs/packages/lenet5.sieve mnist:/work/shared/data/mnist mnist:/work/shared/data/mnist
./run.sh cifar10_quick /work/runs/packages/cifar10_quick.sieve cifar10:/work/shared/data/cifar10 cifar10:/work/shared/data/cifar10
./run.sh mobilenet_v1_0.25_128 /work/runs/packages/mobilenet_v1_0.25_128.sieve images:/work/shared/data/imagenet/sample1000:/work/shared/data/imagenet/sample1000_labels.txt images:/work/shared/data/imagenet/val1300:/work/shared/data/imagenet/val1300_labels.txt
