from paircustom.cli.main import main

main()
