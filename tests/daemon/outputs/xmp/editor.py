"""Another program saving an XMP file every millisecond (run as a process by the tests).

usage: editor.py PATH COUNT rename|inplace

Each save writes the whole file with xmp:Label="edit-N", as a photo manager writes its own
state. Before each save it checks that its previous save is still what the file says (a
merge by Dropsight keeps the label it read): a file holding an older label lost a save.
Prints the number of saves lost.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

TEMPLATE = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="Editor">\n'
    ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
    '  <rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/"\n'
    '    xmlns:dc="http://purl.org/dc/elements/1.1/" xmp:Label="edit-{n}" xmp:Rating="3">\n'
    "   <dc:subject><rdf:Bag><rdf:li>MyTrip</rdf:li></rdf:Bag></dc:subject>\n"
    "  </rdf:Description>\n </rdf:RDF>\n</x:xmpmeta>\n"
)
LABEL = re.compile(rb'(?:xmp:Label="|<xmp:Label>)edit-(\d+)')


def main() -> None:
    path, count, style = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    lost = 0
    for n in range(1, count + 1):
        if n > 1:
            found = LABEL.search(path.read_bytes())
            if found is None or int(found.group(1)) != n - 1:
                lost += 1
        data = TEMPLATE.format(n=n).encode()
        if style == "rename":
            tmp = path.with_name(f".editor-{n}.tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
        else:
            with path.open("r+b") as f:
                f.truncate(0)
                f.write(data)
        time.sleep(0.001)
    print(lost)


if __name__ == "__main__":
    main()
