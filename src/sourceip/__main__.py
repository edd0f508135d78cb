from sourceip.cli.main import main

main()
