"""Train the MNIST classifier: ``python train.py --model_fn model.pth`` (see ``--help``)."""

from mnist_classifier.cli.train import main

if __name__ == "__main__":
    main()
