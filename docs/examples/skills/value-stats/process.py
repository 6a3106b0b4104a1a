"""Processor of the value-stats skill: records in (JSON Lines), one JSON summary out (last stdout line)."""

import argparse
import json
import math


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--region", required=True)
    parser.add_argument("--records", required=True)
    parser.add_argument("--attempt", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with open(args.records, encoding="utf-8") as handle:
        values = [float(json.loads(line)["value"]) for line in handle if line.strip()]
    count = len(values)
    total = math.fsum(values)
    mean = total / count if count else math.nan
    variance = math.fsum((v - mean) ** 2 for v in values) / count if count else math.nan
    print(json.dumps({"count": count, "sum": total, "mean": mean, "variance": variance,
                      "min": min(values, default=math.nan), "max": max(values, default=math.nan)}))


if __name__ == "__main__":
    main()
