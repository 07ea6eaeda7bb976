#!/usr/bin/env python3
"""Checks every link of a built mdBook: each relative href/src names a file of the book,
and each #fragment an id in that file. Prints the broken ones; exits 1 if there are any.
Usage: scripts/check-links.py docs/book"""
import html.parser
import os
import sys
import urllib.parse


class Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name == "id" and value:
                self.ids.add(value)
            elif name in ("href", "src") and value:
                self.links.append(value)


def parse(path, cache={}):
    if path not in cache:
        page = Page()
        with open(path, encoding="utf-8") as f:
            page.feed(f.read())
        cache[path] = page
    return cache[path]


def main(root):
    broken, checked = [], 0
    for directory, _, files in os.walk(root):
        for name in files:
            # 404.html is written for the site's root (`site-url`), not for a path in it.
            if not name.endswith(".html") or name == "404.html":
                continue
            path = os.path.join(directory, name)
            for link in parse(path).links:
                url = urllib.parse.urlsplit(link)
                if url.scheme or url.netloc or link.startswith("mailto:"):
                    continue  # external: not checked offline
                target = path if not url.path else os.path.normpath(
                    os.path.join(directory, urllib.parse.unquote(url.path)))
                if os.path.isdir(target):
                    target = os.path.join(target, "index.html")
                checked += 1
                if not os.path.exists(target):
                    broken.append(f"{os.path.relpath(path, root)}: {link}: no such file")
                elif url.fragment and target.endswith(".html") and \
                        urllib.parse.unquote(url.fragment) not in parse(target).ids:
                    broken.append(f"{os.path.relpath(path, root)}: {link}: no such anchor")
    for b in broken:
        print(b)
    print(f"{checked} links checked, {len(broken)} broken")
    return 1 if broken or checked == 0 else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1]))
