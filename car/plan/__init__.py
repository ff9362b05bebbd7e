"""What a daemon runs: the run plan for its machine (`build`), the records it hands each node (`config`),
and where runs live on this machine (`runs`)."""
