"""Look inside a trained DreamRec checkpoint.

    python inspect_dreamrec.py oracle --model_file saved/DreamRec-....pth --users 1,42 --topk 10 --samples 5
    python inspect_dreamrec.py oracle --model_file saved/DreamRec-....pth --history 50,172,133 --json out.json
    python inspect_dreamrec.py map --model_files saved/DreamRec-....pth saved/SASRec-....pth --out map.png
    python inspect_dreamrec.py readout --model_file saved/DreamRec-....pth --dims 64,256,1024
"""

from recbole_dreamrec.inspection_cli import main

if __name__ == "__main__":
    main()
