"""How messages travel: the data frame format (`wire`), direct links (`direct`), shared memory (`shm`),
hybrid logical clocks (`hlc`) and the typed control messages between CLI, daemon and nodes (`control`)."""
