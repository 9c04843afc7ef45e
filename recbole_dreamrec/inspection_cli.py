"""Command line of ``inspect_dreamrec.py``."""

import argparse
import json

from recbole_dreamrec.errors import add_debug_flag, main_guard
from recbole_dreamrec.analysis.evaluation import SPLITS
from recbole_dreamrec.analysis.inspection import embedding_map, format_text, inspect_users
from recbole_dreamrec.analysis.readout import (DECODINGS, DISTRIBUTIONS, ORACLES, code_readout, format_oracle_decoding,
                                      format_readout, oracle_decoding)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Inspect DreamRec's generated oracle items and embedding space.")
    commands = parser.add_subparsers(dest="command", required=True)
    oracle = commands.add_parser("oracle", help="history, top-k, oracle distances and stability per user")
    oracle.add_argument("--model_file", required=True, help="a DreamRec checkpoint")
    oracle.add_argument("--users", default="", help="external user ids, comma separated")
    oracle.add_argument("--history", default="", help="a raw history: external item ids, comma separated")
    oracle.add_argument("--topk", type=int, default=10)
    oracle.add_argument("--samples", type=int, default=5, help="generations per user, for stability")
    oracle.add_argument("--seed", type=int, default=None, help="first sampling seed (default: the config's seed)")
    oracle.add_argument("--json", default=None, help="also write the report as JSON here")
    emb = commands.add_parser("map", help="2-D map of item embeddings of one or more checkpoints")
    emb.add_argument("--model_files", nargs="+", required=True)
    emb.add_argument("--out", default="embedding_map.png")
    emb.add_argument("--users", type=int, default=100, help="oracles of this many test users overlaid")
    emb.add_argument("--method", choices=("tsne", "pca"), default="tsne")
    readout = commands.add_parser(
        "readout", help="how well item codes carry a next-item distribution through a dot product"
    )
    readout.add_argument("--model_file", required=True, help="a checkpoint of a sequential model (its data is used)")
    readout.add_argument("--dims", default="64,256,1024", help="code sizes for random and SVD codes")
    readout.add_argument("--distribution", choices=DISTRIBUTIONS, default="popularity",
                         help="popularity: the training popularity for every user; model: each user's softmax of the "
                              "checkpoint's scores (a softmax-trained model: the best a mean code could keep of it)")
    readout.add_argument("--split", choices=SPLITS, default="test")
    readout.add_argument("--guidance_weight", type=float, default=0.0,
                         help="with --distribution model: read (1+w) m_p - w m_pop, m_pop the training popularity's "
                              "mean code, as classifier-free guidance does")
    readout.add_argument("--oracle_ranks", default="",
                         help="with --distribution model: comma-separated ranks r; each SVD table also gets rows "
                              "with the mean codes' best rank-r affine approximation (an oracle linear in an r-d h)")
    readout.add_argument("--decode", choices=DECODINGS, default="dot",
                         help="with --distribution model: dot ranks by e_i . m; maxent by e_i . lam, lam the natural "
                              "parameters of the maximum-entropy distribution with mean code m (Newton; minutes)")
    readout.add_argument("--noise", default="",
                         help="with --distribution model: comma-separated levels s; each SVD table also gets rows "
                              "with noise of expected norm s |m - m_pop| added to every mean code m")
    readout.add_argument("--out", default=None, help="also write the table (Markdown) here")
    decode = commands.add_parser(
        "decode", help="a DreamRec checkpoint's oracles ranked by the dot product and by maximum-entropy decoding"
    )
    decode.add_argument("--model_file", required=True, help="a DreamRec checkpoint")
    decode.add_argument("--split", choices=SPLITS, default="valid")
    decode.add_argument("--oracles", default="one-step",
                        help=f"comma separated, of {', '.join(ORACLES)}: one-step is the x0-prediction from x_T = 0 "
                             "at the last step (an L2-trained model's estimate of the mean code), generated the "
                             "model's own generation, least-squares the best affine read of x_0 from the model's own "
                             "h over the training targets (one pass over them first); the other oracles' rows are "
                             "compared with generated's, user by user")
    decode.add_argument("--ridge", type=float, default=1.0, help="the least-squares oracle's ridge on its weights")
    decode.add_argument("--guidance_weights", default="0", help="comma separated classifier-free guidance weights")
    decode.add_argument("--decodings", default=",".join(DECODINGS),
                        help="comma separated, of dot, maxent, maxent-lambda (maxent: Newton per user, minutes on "
                             "ml-1m; maxent-lambda, one-step oracle only: guidance applied to the natural parameters "
                             "of the conditional and unconditional predictions)")
    decode.add_argument("--metrics", default="ndcg@10,hit@10",
                        help="comma separated columns of the table, among those the checkpoint's config evaluates")
    decode.add_argument("--out", default=None, help="also write the table (Markdown) here")
    for command_parser in (parser, oracle, emb, readout, decode):
        add_debug_flag(command_parser)
    args = parser.parse_args(argv)
    if args.command == "oracle" and not (args.users or args.history):
        parser.error("oracle needs --users and/or --history")
    return args


@main_guard
def main(argv=None):
    args = parse_args(argv)
    if args.command == "oracle":
        users = [u for u in args.users.split(",") if u]
        history = [i for i in args.history.split(",") if i]
        report = inspect_users(args.model_file, users, history, args.topk, args.samples, args.seed)
        print(format_text(report))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(report, f, indent=1)
        return report
    if args.command == "readout":
        dims = [int(d) for d in args.dims.split(",")]
        ranks = [int(r) for r in args.oracle_ranks.split(",") if r]
        noise = [float(s) for s in args.noise.split(",") if s]
        rows = code_readout(args.model_file, dims, split=args.split, distribution=args.distribution,
                            guidance_weight=args.guidance_weight, oracle_ranks=ranks, decode=args.decode,
                            noise_levels=noise)
        _show(format_readout(rows, split=args.split), args.out)
        return rows
    if args.command == "decode":
        metrics = [m.lower() for m in _names(args.metrics)]
        rows = oracle_decoding(args.model_file, args.split, _names(args.oracles),
                               [float(w) for w in _names(args.guidance_weights)], _names(args.decodings), metrics,
                               ridge=args.ridge)
        _show(format_oracle_decoding(rows, metrics, split=args.split), args.out)
        return rows
    embedding_map(args.model_files, args.out, users=args.users, method=args.method)
    print(f"written: {args.out}")
    return args.out


def _names(text):
    return [part.strip() for part in text.split(",") if part.strip()]


def _show(text, out=None):
    """Print a table, and write it to ``out`` too when given."""
    print(text)
    if out:
        with open(out, "w") as f:
            f.write(text + "\n")
