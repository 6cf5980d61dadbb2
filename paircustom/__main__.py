from paircustom.cli import main

main()
