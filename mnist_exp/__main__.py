from mnist_exp.train import main

if __name__ == "__main__":
    main()
