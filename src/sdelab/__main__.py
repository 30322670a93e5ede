from sdelab.cli import main; raise SystemExit(main())
