"""Named mutants of the house rules and the dispatch (issue 13); see tools/mutants.py."""

ARCH = ("tests/test_architecture.py",)
DISPATCH = ("tests/test_plugin.py::test_resolved_dispatch_matches_pluggy",)
MUTANTS = [
    # a shipped plugin reaching past the facade into the model's internals, at run time
    ("architecture.plugin_touches_internals", "plugins/pt_shared/__init__.py",
     "    idx = address >> vm.pmd_shift\n", "    idx = address >> vm.sh\n", ARCH, True),
    # a shipped plugin importing the model
    ("architecture.plugin_imports_model", "plugins/pt_shared/__init__.py",
     "from typing import Any\n", "from typing import Any\n\nimport mmframe.mm.pmd  # noqa: F401\n", ARCH, False),
    # a model module importing the run layer
    ("architecture.model_imports_workload", "mmframe/mm/zap.py",
     "from mmframe.mm.pte_change import ZAP\n",
     "from mmframe.mm.pte_change import ZAP\nfrom mmframe.workloads import spawn  # noqa: F401\n", ARCH, False),
    # resolved dispatch calling a firstresult chain in the wrong order
    ("dispatch.chain_order", "mmframe/plugin.py",
     "            return first(fns[0], _chain(fns[1:], True, arity))",
     "            return first(fns[-1], _chain(fns[:-1], True, arity))", DISPATCH, True),
]
