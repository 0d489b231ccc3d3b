"""Your own data: a CSV file of feature columns (numbers, yes/no, text) and one target column.

pandas reads the file (quoted fields, BOMs, CRLF, any one-character delimiter, a million rows
in seconds) in the encoding charset-normalizer finds (or ``--encoding``), with decimal commas
where a semicolon file's numbers are written so (or ``--decimal``). Every problem is refused with
one line that names the file, the line and the column. Gaps stay gaps here (NaN in a number
column, None in a text one): ``tables.py`` decides how each column becomes numbers and how its
gaps are filled, from the training rows only. Columns can be declared text (``--text_columns``)
or left out (``--ignore_columns``); a column unique in every row, an ID, is left out by itself.
"""

from __future__ import annotations

import codecs
import collections
import csv
import re
import stat
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..errors import UserError, quoted
from ..files import unchanged_since_written
from .dataset import CLASSIFICATION, REGRESSION, Dataset, split_test
from .tables import NUMBER_NA, as_number_column, is_text, text_gaps
from .targets import canonical_label, class_names, infer_task, many_classes_note, targets

DECIMAL_COMMA, DECIMAL_POINT = re.compile(r"[+-]?\d+(\.\d{3})*,\d+"), re.compile(r"[+-]?\d*\.\d+")
GROUPED = re.compile(r"[+-]?\d{1,3}(\.\d{3})+")  # 85.591: thousands grouped with points
LINE_BREAK = re.compile(r"\r\n?|\n")
DELIMITERS = ",;\t|"  # what sniffing may choose among
SNIFF_BYTES = 64 * 1024  # sniffing reads this much, and more when the header line is longer
# A first line longer than this is refused: pandas would read a header of any length, but no table has
# so many columns (12,000 named "feature_12345" are 170 kB).
MAX_HEADER_BYTES = 16 * 1024 * 1024
UTF8 = "utf-8-sig"  # UTF-8, with or without a byte-order mark
# When a file that began as UTF-8 turns out not to be, the whole file is given to the detector up to this size.
DETECT_WHOLE_BYTES = 256 * 1024 * 1024
# The fewest rows in which a column unique in every row is taken for an ID and left out.
ID_MIN_ROWS = 20
# id, ID, user_id, user id, userId, UserID, key, index, uuid: not paid, valid or GRID.
ID_NAME = re.compile(r"(?:.*[_ .-])?(?i:id|key|index|uuid)|.*[a-z](?:Id|ID)")
DELIMITER_NAMES = {",": "commas", ";": "semicolons", "\t": "tabs", "|": "pipes"}
# Spreadsheets run a cell that starts with one of these as a formula ("CSV injection", OWASP).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
ESCAPE = "'"  # what OWASP advises to put before such a cell: spreadsheets then show it as text
PLAIN_NUMBER = re.compile(r"[+-]?(?:\d[\d.,]*|[.,]\d[\d.,]*)(?:[eE][+-]?\d+)?")  # -0.5, +1e-3, -1.234,5
PREDICTIONS_RECEIPT = "mnist-predict --out"  # the kind of file the receipt beside an --out names


@dataclass
class TableOptions:
    """How to read a user's table: the file's format where it is not sniffed, and which cells and
    columns mean what (each a ``csv``-only flag of ``mnist-train``)."""

    delimiter: str | None = None
    decimal: str | None = None
    encoding: str | None = None
    na_values: list[str] = field(default_factory=list)
    text_columns: list[str] = field(default_factory=list)
    ignore_columns: list[str] = field(default_factory=list)
    drop_na: bool = False
    usual_decimal: str = "."  # the decimal mark of a file that does not show one (the training file's)


def column_names(text: str | None) -> list[str]:
    """'zip, region' -> ['zip', 'region']: a comma-separated flag's names."""
    return [name.strip() for name in (text or "").split(",") if name.strip()]


def load_csv(
    path: Path,
    target: str | None = None,
    test_csv: str | Path | None = None,
    task: str | None = None,
    drop_na: bool = False,
    delimiter: str | None = None,
    decimal: str | None = None,
    encoding: str | None = None,
    na_values: str | None = None,
    text_columns: str | None = None,
    ignore_columns: str | None = None,
) -> Dataset:
    """Features from every column but ``target`` (default: the last); test rows from ``test_csv``
    or, without one, a fixed 20% of the file. ``task`` None: inferred from the target's values
    (``targets.infer_task``). ``delimiter``, ``decimal``, ``encoding`` None: sniffed
    from the file. ``na_values``, ``text_columns``, ``ignore_columns``: comma-separated names."""
    options = TableOptions(delimiter, decimal, encoding, column_names(na_values), column_names(text_columns),
                           column_names(ignore_columns), drop_na)
    table = CsvTable.read(path, options, text=[*options.text_columns, target or "last"])
    target = target or table.header[-1]
    if target not in table.header:
        raise UserError(f"{path}: no column {target!r} (columns: {', '.join(table.header)}); choose one with --target")
    table.check_declared(target)
    if task is None:
        task, said = table.target_task(target)
        table.notes[:0] = [said] if said else []  # first: what the run will be is said before anything else
    features, labels = table.parse(target, task)
    classes = class_names(path, labels) if task == CLASSIFICATION else None
    table.notes += many_classes_note(path.name, len(classes), len(labels), "; if it is an amount, pass --task "
                                     "regression") if classes else []
    if test_csv is None:
        train, test = _split_one_file(path, features, labels, task, classes)
    else:
        # Columns that are text in training are text in the test file too: a level "7" stays "7".
        text = [name for name in features.columns if not pd.api.types.is_float_dtype(features[name])]
        test_table = CsvTable.read(Path(test_csv), replace(options, usual_decimal=table.decimal), text=[*text, target])
        _check_same_columns(Path(test_csv), test_table.header, path, table.header)
        test_features, test_labels = test_table.parse(target, task, left_out=table.left_out)
        test_features = test_features[list(features.columns)]  # matched by name: any order of columns will do
        table.notes += test_table.notes
        train = (features, targets(path, labels, task, classes))
        test = (test_features, targets(Path(test_csv), test_labels, task, classes))
    names = list(features.columns)
    return Dataset(f"csv:{path}", train, test, task, (len(names),), classes, feature_names=names,
                   found=f"{path.name}{table.format_words()}", notes=table.notes, na_values=options.na_values,
                   decimal=table.decimal)


def spreadsheet_safe(cell: object) -> object:
    """A text cell as a spreadsheet will show rather than run it: one that starts like a formula gets
    ``ESCAPE`` before it, and so does one that starts with ``ESCAPE`` (so that ``as_written`` undoes
    exactly this); numbers (-0.5) and anything not text stay as they are."""
    if isinstance(cell, str) and cell.startswith((*FORMULA_STARTS, ESCAPE)) and not PLAIN_NUMBER.fullmatch(cell):
        return ESCAPE + cell
    return cell


def as_written(cell: str) -> str:
    """The cell ``spreadsheet_safe`` was given."""
    return cell[1:] if cell.startswith(ESCAPE) else cell


def read_rows(path: Path, options: TableOptions | None = None, columns: list[str] | None = None,
              numbers: list[str] = ()) -> pd.DataFrame:
    """Rows to predict on: the file's cells as text, exactly as written (the model's column specs
    turn them into numbers), with a check that it has ``columns`` (others are ignored). The
    ``numbers`` columns' decimal commas become points, when the file has them. An earlier
    ``mnist-predict --out``, unedited since (its receipt says so), is read back through ``as_written``;
    any other file keeps its quotes, whatever its header (a user's column may be named prediction).
    ``attrs["ours"]`` says which it was."""
    table = CsvTable.read(path, options or TableOptions(), min_columns=1, all_text=True)
    ours = unchanged_since_written(path, PREDICTIONS_RECEIPT)
    if ours:
        table.header = [as_written(name) for name in table.header]
        table.frame = table.frame.map(as_written).set_axis(table.header, axis=1)
    missing = [name for name in columns or [] if name not in table.header]
    if missing:
        raise UserError(f"{path}: no column {missing[0]!r}; the model needs {', '.join(columns)}")
    if table.decimal != ".":
        for name in numbers:  # 2.817,20 -> 2817.20
            table.frame[name] = table.frame[name].str.replace(".", "", regex=False).str.replace(",", ".", regex=False)
    table.frame.attrs["read_as"] = table.format_words()
    table.frame.attrs["ours"] = ours
    return table.frame


class CsvTable:
    """One CSV file, read: its header, its rows as text-or-number columns, where each row was, and
    what was decided on the way (``notes``, ``left_out``)."""

    def __init__(self, path: Path, header: list[str], options: TableOptions, delimiter: str, decimal: str,
                 encoding: str):
        self.path, self.header, self.options = path, header, options
        self.delimiter, self.decimal, self.encoding = delimiter, decimal, encoding
        self.frame: pd.DataFrame | None = None
        self.text: list[str] = []  # columns read as text that stay text
        self.notes: list[str] = []  # a line for each thing left out
        self.left_out: list[str] = []  # columns left out as IDs or empty

    @classmethod
    def read(cls, path: Path, options: TableOptions, min_columns: int = 2, text: list[str] = (),
             all_text: bool = False) -> CsvTable:
        """The file's rows; numeric columns as numbers, the others (and the columns ``text`` names, the
        header's last for "last"; every column with ``all_text``) as text."""
        raw = _sample(path)
        encoding = encoding_named(options.encoding) if options.encoding else detect_encoding(raw)
        sample = _whole_lines(path, raw, encoding)
        delimiter = options.delimiter or _sniff(sample)
        decimal = options.decimal or _sniff_decimal(sample, delimiter) or options.usual_decimal
        if decimal == "," and delimiter == ",":
            raise UserError(f"{path}: --decimal , needs cells split by another character, and this file's are split "
                            "by commas (give --delimiter if they are not)")
        header = _header(path, sample, delimiter, min_columns)
        table = cls(path, header, options, delimiter, decimal, encoding)
        table.text = [header[-1] if name == "last" else name for name in text if name in (*header, "last")]
        try:
            table.frame = table.read_frame(all_text)
        except UnicodeError as e:
            if options.encoding or encoding != UTF8:
                raise UserError(f"{path}: cannot be read as {shown_encoding(encoding)} ({e}); give its encoding with "
                                "--encoding") from e
            table.encoding = table.detect_in_whole_file(e)
            table.frame = table.read_frame(all_text)
        if table.frame.empty:
            raise UserError(f"{path}: has a header but no data rows")
        table.check_row_lengths()
        return table

    def read_frame(self, all_text: bool) -> pd.DataFrame:
        try:
            # No NA filter: "NA" in a text column is a word, a level like any other (tables.py decides).
            # A row longer than the header must be refused, not taken as an index or cut: warnings are errors.
            with warnings.catch_warnings():
                warnings.simplefilter("error", pd.errors.ParserWarning)
                return pd.read_csv(self.path, sep=self.delimiter, encoding=self.encoding, header=0, names=self.header,
                                   index_col=False, dtype=str if all_text else dict.fromkeys(self.text, str),
                                   na_filter=False, skipinitialspace=True, engine="c", quotechar='"',
                                   decimal=self.decimal, thousands="." if self.decimal == "," else None)
        except (pd.errors.ParserError, pd.errors.ParserWarning) as e:
            raise self.ragged(e) from None
        except OSError as e:
            raise UserError(f"{self.path}: cannot be read ({e.strerror})") from e

    def detect_in_whole_file(self, error: UnicodeDecodeError) -> str:
        """The encoding of a file whose first part was UTF-8 but a later part is not."""
        if self.path.stat().st_size > DETECT_WHOLE_BYTES:
            raise UserError(f"{self.path}: not UTF-8 after its first {SNIFF_BYTES // 1024} KB ({error}); give its "
                            "encoding with --encoding") from error
        data = self.path.read_bytes()
        try:
            data.decode(UTF8)
        except UnicodeDecodeError as bad:
            earlier = re.search(rb"[\x80-\xff]", data[:bad.start])
            if earlier:  # UTF-8's own characters before: the rest is another encoding, not one code page for all
                line, first = data.count(b"\n", 0, bad.start) + 1, data.count(b"\n", 0, earlier.start()) + 1
                raise UserError(f"{self.path}, line {line:,}: not UTF-8, though line {first:,} is UTF-8 with "
                                "characters beyond ASCII: the file mixes two encodings; save it again in one (UTF-8)"
                                ) from error
        return detect_encoding(data)

    def format_words(self) -> str:
        """' (read as cp1252; semicolons, decimal commas)': how the file was read, where not the usual."""
        parts = [f"read as {self.encoding}"] if self.encoding != UTF8 else []
        written = [DELIMITER_NAMES.get(self.delimiter, f"{self.delimiter!r} between cells")] \
            if self.delimiter != "," else []
        written += ["decimal commas"] if self.decimal == "," else []
        parts += [", ".join(written)] if written else []
        return f" ({'; '.join(parts)})" if parts else ""

    def records(self):
        """(line the record starts on, its cells) for every data row as pandas counts them."""
        # Cells of any length (csv's default limit is 128 KB; pandas read the file without one).
        csv.field_size_limit(2**31 - 1)
        with open(self.path, newline="", encoding=self.encoding, errors="replace") as f:
            reader = csv.reader(f, delimiter=self.delimiter, skipinitialspace=True)
            next(reader)
            start = reader.line_num + 1
            for cells in reader:
                if any(cell.strip() for cell in cells):  # pandas skips blank and whitespace-only lines
                    yield start, cells
                start = reader.line_num + 1

    def ragged(self, error: Exception) -> UserError:
        """The first row whose cells do not match the header, by line; or what the parser said."""
        for line, cells in self.records():
            if len(cells) != len(self.header):
                return UserError(f"{self.path}, line {line}: {len(cells)} cells, but the header has "
                                 f"{len(self.header)} columns")
        return UserError(f"{self.path}: cannot be read as CSV ({str(error).splitlines()[0]})")

    def check_row_lengths(self) -> None:
        """Short rows: pandas fills their missing cells silently. Only a file that has empty cells can
        hold one, so only such a file is scanned."""
        text = [name for name in self.frame.columns if is_text(self.frame[name])]
        if (self.frame[text] == "").to_numpy().any():  # one comparison: a table may have 10,000 columns
            for line, cells in self.records():
                if len(cells) < len(self.header):
                    raise UserError(f"{self.path}, line {line}: {len(cells)} cells, but the header has "
                                    f"{len(self.header)} columns")

    def check_declared(self, target: str) -> None:
        """--text_columns and --ignore_columns name feature columns of this file."""
        for flag in ("text_columns", "ignore_columns"):
            for name in getattr(self.options, flag):
                if name not in self.header:
                    raise UserError(f"{self.path}: --{flag} {name}: no such column (columns: "
                                    f"{', '.join(self.header)})")
                if name == target:
                    raise UserError(f"{self.path}: --{flag} {name}: that is the target column")

    def line_of(self, row: int) -> int:
        """The line a data row (0-based, as read) starts on: error path only."""
        for index, (line, _) in enumerate(self.records()):
            if index == row:
                return line
        return -1

    def refuse(self, row: int, column: str, problem: str) -> UserError:
        return UserError(f"{self.path}, line {self.line_of(row)}, column {column!r}: {problem}")

    def parse(self, target: str, task: str, left_out: list[str] | None = None) -> tuple[pd.DataFrame, list]:
        """Feature columns (numbers as float64 with NaN for gaps, text stripped with None for gaps) and
        the target's values. Rows without a target are left out, and with ``drop_na`` rows with gaps.
        ``left_out``: the columns to leave out (a test file: the training file's); None: found here."""
        frame = self.frame.drop(columns=self.options.ignore_columns)
        frame = frame.apply(lambda column: column.str.strip() if is_text(column) else column)
        frame = self._with_targets(frame, target, task)
        features = frame.drop(columns=[target])
        for name in features.columns:
            features[name] = self._feature(features[name], name)
        features = self._leave_out(features, left_out)
        if self.options.drop_na:
            features = features[~features.isna().any(axis=1)]
            if features.empty:
                raise UserError(f"{self.path}: no rows left after dropping those with gaps (--drop_na)")
        labels = frame.loc[features.index, target].astype(str)
        if task == REGRESSION:
            numbers, bad, problem = as_number_column(labels, rule="a regression target must be numeric",
                                                     decimal=self.decimal)
            if bad is not None:
                raise self.refuse(int(labels.index[bad]), target, problem)
            return features.reset_index(drop=True), numbers.tolist()
        canonical = {label: canonical_label(label) for label in labels.unique()}
        return features.reset_index(drop=True), labels.map(canonical).tolist()

    def target_task(self, target: str) -> tuple[str, str | None]:
        """The task the target's cells ask for, and the line saying so (``targets.infer_task``); gaps
        (empty cells, pandas' NA words, ``--na_values``) do not count."""
        column = self.frame[target]
        cells = column[~text_gaps(column, [*self.options.na_values, *NUMBER_NA])]
        return infer_task(target, cells, self.decimal)

    def _with_targets(self, frame: pd.DataFrame, target: str, task: str) -> pd.DataFrame:
        """The rows that have a target: a row without one cannot train or test, so it is left out with a note."""
        words = [*self.options.na_values, *(NUMBER_NA if task == REGRESSION else ())]
        gap = text_gaps(frame[target], words) if is_text(frame[target]) else frame[target].isna().to_numpy()
        if gap.any():
            first = self.line_of(int(frame.index[np.argmax(gap)]))
            self.notes.append(f"{self.path.name}: {int(gap.sum())} rows have no {target!r} (the first on line "
                              f"{first}); left out")
            frame = frame[~gap]
            if frame.empty:
                raise UserError(f"{self.path}: no row has a value in the target column {target!r}")
        return frame

    def _feature(self, column: pd.Series, name: str) -> pd.Series:
        """One feature column: numbers with NaN gaps; or text, declared or found, with None gaps."""
        if pd.api.types.is_bool_dtype(column):
            return column  # true/false: a yes/no column (tables.py), not the numbers 1 and 0
        if name not in self.text:
            numbers, bad, problem = as_number_column(column, na_values=self.options.na_values, decimal=self.decimal)
            if bad is not None:
                raise self.refuse(int(column.index[bad]), name, problem)
            if numbers is not None:
                return numbers
        return column.where(~text_gaps(column, self.options.na_values), None)

    def _leave_out(self, features: pd.DataFrame, left_out: list[str] | None) -> pd.DataFrame:
        """Without the columns that cannot help: empty in every row, or an ID (unique in every row)."""
        if left_out is None:
            left_out = []
            for name in features.columns:
                why = self._useless(features[name], name)
                if why:
                    left_out.append(name)
                    self.notes.append(f"{self.path.name}: column {name!r} left out: {why}")
            self.left_out = left_out
        kept = features.drop(columns=[name for name in left_out if name in features.columns])
        if kept.columns.empty:
            gone = [*self.options.ignore_columns, *left_out]
            # A column of sentences (words between spaces, in most rows) was left out as an ID: texts.
            prose = [name for name in left_out if name in features.columns
                     and features[name].map(lambda cell: isinstance(cell, str) and " " in cell.strip()).mean() > 0.5]
            hint = (f"; {', '.join(map(repr, prose))} {'is' if len(prose) == 1 else 'are'} free text: train on it as "
                    f"texts with --dataset text:{self.path}") if prose else ""
            raise UserError(f"{self.path}: no feature column is left (left out: {', '.join(gone)}){hint}")
        return kept

    def _useless(self, column: pd.Series, name: str) -> str | None:
        if column.isna().all():
            return "it is empty in every row"
        if (name in self.options.text_columns or len(column) < ID_MIN_ROWS or column.isna().any()
                or not column.is_unique):
            return None
        if is_text(column):
            return "unique in every row, like an ID (name it in --text_columns to keep it)"
        # Whole numbers unique in every row can be a real quantity (a year in a yearly table): only
        # a column named as an ID is one.
        values = column.to_numpy(dtype=np.float64)
        if ID_NAME.fullmatch(name) and np.all(values == np.round(values)):
            return "a different whole number in every row, and named like an ID"
        return None


def _sample(path: Path) -> bytes:
    try:
        if not stat.S_ISREG(path.stat().st_mode):  # a FIFO would block, a folder cannot be read
            raise UserError(f"{path}: not a regular file; give a CSV file")
        with open(path, "rb") as f:
            return f.read(SNIFF_BYTES)
    except FileNotFoundError:
        raise UserError(f"{path}: no such CSV file") from None
    except OSError as e:
        raise UserError(f"{path}: cannot be read ({e.strerror})") from e


def detect_encoding(raw: bytes) -> str:
    """The encoding of a file that begins with ``raw``: UTF-8 (``UTF8``) when it decodes as such, a
    UTF-16 byte-order mark's, or the one charset-normalizer finds."""
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    unmarked = _utf16_without_bom(raw)
    if unmarked:
        return unmarked
    try:
        codecs.getincrementaldecoder(UTF8)().decode(raw, final=False)  # a character cut at the end is fine
        return UTF8
    except UnicodeDecodeError:
        pass
    import charset_normalizer

    matches = list(charset_normalizer.from_bytes(raw))
    if not matches:
        raise UserError("not a text file in any encoding charset-normalizer knows; if it is text, give its "
                        "encoding with --encoding")
    # Western European text decodes without a stray character in several code pages (é is 0xE9 in
    # each), and the detector's language model may rank a Central European or Mac one first: among
    # the matches with the fewest stray characters, take Windows' Western one, the code page
    # spreadsheets save in.
    least = min(m.chaos for m in matches)
    clean = [name for m in matches if m.chaos == least for name in m.could_be_from_charset]
    return encoding_named("cp1252" if "cp1252" in clean else matches[0].encoding)


def _utf16_without_bom(raw: bytes) -> str | None:
    """utf-16-le or utf-16-be for text saved as UTF-16 without its byte-order mark: mostly Latin text
    then has a NUL as every second byte (valid UTF-8, so it must be caught before UTF-8 is tried)."""
    pairs = raw[:len(raw) // 2 * 2]
    if len(pairs) < 8:
        return None
    even, odd = pairs[0::2].count(0) / (len(pairs) / 2), pairs[1::2].count(0) / (len(pairs) / 2)
    if odd > 0.5 and even < 0.05:
        return "utf-16-le"
    if even > 0.5 and odd < 0.05:
        return "utf-16-be"
    return None


def encoding_named(name: str) -> str:
    """An encoding's usual name (latin_1 -> iso8859-1), refused when Python knows no such codec."""
    try:
        info = codecs.lookup(name)
    except LookupError:
        info = None
    if info is None or not getattr(info, "_is_text_encoding", True):  # rot13, base64: not a file's encoding
        raise UserError(f"--encoding {name}: no such text encoding (e.g. utf-8, cp1252, latin-1, utf-16)")
    return UTF8 if info.name in ("utf-8", UTF8) else info.name


def _whole_lines(path: Path, raw: bytes, encoding: str) -> str:
    """The file's first lines as text, from the file's first bytes ``raw``: the header whole, however
    long (up to ``MAX_HEADER_BYTES``), and no line cut short, so no column name is cut in two."""
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        with open(path, "rb") as f:
            f.seek(len(raw))
            ended = len(raw) < SNIFF_BYTES
            pieces = [decoder.decode(raw, final=ended)]
            # Only the newest piece is searched: the ones before it hold no line break (searching all
            # the text after each read took seconds for a long line). A CR LF split between two pieces
            # is found at its CR, which ends the line as well.
            while not ended and not LINE_BREAK.search(pieces[-1]):
                if f.tell() >= MAX_HEADER_BYTES:
                    raise UserError(f"{path}: its first line, the header, is longer than "
                                    f"{MAX_HEADER_BYTES // 2**20} MB; a CSV file's first line names its columns")
                chunk = f.read(SNIFF_BYTES)
                ended = len(chunk) < SNIFF_BYTES
                pieces.append(decoder.decode(chunk, final=ended))
    except UnicodeError as e:  # also UTF-16 without its byte-order mark: utf-16-le or utf-16-be then
        raise UserError(f"{path}: cannot be read as {shown_encoding(encoding)} ({e}); give its encoding with "
                        "--encoding") from e
    except OSError as e:
        raise UserError(f"{path}: cannot be read ({e.strerror})") from e
    text = "".join(pieces)
    if ended:
        return text
    return text[:max(match.end() for match in LINE_BREAK.finditer(text))]  # the last line may be cut short


def shown_encoding(encoding: str) -> str:
    return "utf-8" if encoding == UTF8 else encoding


def _sniff(sample: str) -> str:
    """The delimiter of the file's first lines; a comma when they do not tell."""
    lines = _first_lines(sample)
    try:
        return csv.Sniffer().sniff("\n".join(lines), delimiters=DELIMITERS).delimiter
    except csv.Error:
        return ","


def _first_lines(sample: str) -> list[str]:
    return sample.splitlines()[:50]


def _sniff_decimal(sample: str, delimiter: str) -> str | None:
    """',' when a file not split by commas writes its numbers with decimal commas (0,5) and never
    with points (0.5); '.' when it writes points or is split by commas; None when it shows neither
    (whole numbers, 85.591 that may be grouped thousands)."""
    if delimiter == ",":
        return "."
    cells = [cell.strip() for row in csv.reader(_first_lines(sample)[1:], delimiter=delimiter) for cell in row]
    commas = sum(bool(DECIMAL_COMMA.fullmatch(cell)) for cell in cells)
    # 85.591 or 2.817,20 may be thousands grouped with points, as decimal-comma files write them.
    points = sum(bool(DECIMAL_POINT.fullmatch(cell)) and not GROUPED.fullmatch(cell) for cell in cells)
    return "," if commas and not points else "." if points else None


def _header(path: Path, sample: str, delimiter: str, min_columns: int) -> list[str]:
    csv.field_size_limit(2**31 - 1)  # a name of any length: the header's own limit is MAX_HEADER_BYTES
    rows = [row for row in csv.reader(sample.splitlines(), delimiter=delimiter) if row]
    if not rows:
        raise UserError(f"{path}: the file is empty")
    header = [name.strip() for name in rows[0]]
    if len(header) < min_columns:
        raise UserError(f"{path}: needs at least one feature column and a target column, found {header} "
                        f"(if the columns are split by another character, give it with --delimiter)")
    unnamed = [i + 1 for i, name in enumerate(header) if not name]
    if unnamed:
        raise UserError(f"{path}, line 1: column {unnamed[0]} has no name; every column needs one")
    repeated = sorted(name for name, count in collections.Counter(header).items() if count > 1)
    if repeated:
        raise UserError(f"{path}, line 1: the column name {repeated[0]!r} appears more than once")
    return header


def _check_same_columns(test_csv: Path, header: list[str], path: Path, training: list[str]) -> None:
    """The test file has the training file's columns, in any order; else the first one missing or extra."""
    missing, extra = [c for c in training if c not in header], [c for c in header if c not in training]
    if missing or extra:
        what = f"no column {quoted(missing[0])}" if missing else f"a column {quoted(extra[0])}"
        raise UserError(f"{test_csv}: has {what} that {path.name} does not have" if extra else
                        f"{test_csv}: has {what}, which {path.name} has; a test file needs the training file's "
                        "columns (in any order)")


def _split_one_file(path: Path, features: pd.DataFrame, labels: list, task: str, classes: list[str] | None):
    y = targets(path, labels, task, classes)
    # Stratify when every class can appear on both sides; tiny classes make that impossible.
    stratify = task == CLASSIFICATION and min(torch.bincount(y).tolist()) >= 2
    return split_test(features, y, stratify=stratify)
