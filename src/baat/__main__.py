from baat.cli import main

main()
