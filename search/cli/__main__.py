from search.cli.main import main

raise SystemExit(main())
