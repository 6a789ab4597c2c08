# Input functions: they look paths up in the plan (embmap.plan) and hold no logic of their own.


def exp_of(wc):
    return P.experiments[wc.exp]


def extract_inputs(wc):
    net = P.network(wc.exp, wc.network)
    inputs = {"manifest": P.manifest(wc.exp)}
    if net.trained_here:
        inputs["model"] = P.model_dir(wc.exp, wc.network)
    if P.aligned(wc.exp, wc.network):
        inputs["aligned"] = P.aligned(wc.exp, wc.network)
    return inputs


def fit_stores(wc):
    return P.stores(wc.exp, exp_of(wc).fit_split)


def eval_stores(wc):
    return P.stores(wc.exp, exp_of(wc).eval_split)


def all_maps(wc):
    return [P.maps_dir(wc.exp, a) for a in exp_of(wc).networks]


def pairs_stores(wc):
    return P.stores(wc.exp, "pairs")


def split_inputs(wc):
    exp = exp_of(wc)
    return {"pairs": P.pairs_file(wc.exp)} if exp.task == "open_set" else {}


def network_labels(wc):
    return {k: n.label for k, n in exp_of(wc).networks.items()}


def control_networks(wc):
    return [k for k, n in exp_of(wc).networks.items() if n.control]
