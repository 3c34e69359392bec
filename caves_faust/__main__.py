"""`python -m caves_faust` / `caves-faust`: the Faust command line of this app (worker, send, generate...)."""

from caves_faust import app


def main() -> None:
    app.main()


if __name__ == "__main__":
    main()
