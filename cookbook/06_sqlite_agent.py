"""A tool-calling agent over SQLite: ChatAWRS in LangGraph's ``create_react_agent``.

The recipe builds a small SQLite database of cities, gives the model two real tools (a
read-only SQL query tool and a calculator, LangChain ``StructuredTool`` s) and hands
both to LangGraph's prebuilt ReAct agent: the model calls tools, LangGraph's tool node
runs them, their results go back as ``ToolMessage`` s, until the model answers in text.
The model is chosen per turn (LangGraph's dynamic model): the first turn must query the
database (``tool_choice="sql_query"``: the answer is there); later turns choose freely
(``"auto"``: the calculator, another query, or the answer); at most three model turns. Both tools are pydantic classes whose validators
hold for every call: the query must be one SELECT that SQLite can prepare, the
expression plain arithmetic.

Three ways to run the same agent, the same model and particle budget:

* ``awrs-smc``: ``ChatAWRS(...).bind_tools(...)``, the posterior over valid calls;
* ``lcd``: the same constraint, locally constrained decoding (biased, no weights);
* ``unconstrained``: the same prompt (tools rendered the same way), no constraint;
  the output is parsed leniently and a call that does not parse or validate fails. This
  baseline runs the same loop by hand: its text is not a tool call an agent framework
  could route, which is the point of the comparison.

It prints, over the questions, the share of tool calls that are valid and the share of
final answers that contain the right value (computed by a reference SQL query).

Run: python cookbook/06_sqlite_agent.py [--particles 4] [--questions 20]
"""

from __future__ import annotations

import argparse
import ast
import json
import operator
import sqlite3
import time
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import StructuredTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, Field, ValidationError, field_validator

from awrs_adapters import NoValidSampleError
from awrs_adapters.constraints.tools import parse_tool_calls, render_tools
from awrs_adapters.integrations.langchain import ChatAWRS

SCHEMA = """
CREATE TABLE cities (name TEXT PRIMARY KEY, country TEXT, population INTEGER, area INTEGER);
INSERT INTO cities VALUES
  ('Paris', 'France', 2102, 105), ('Lyon', 'France', 522, 48), ('Marseille', 'France', 873, 241),
  ('Berlin', 'Germany', 3755, 891), ('Munich', 'Germany', 1510, 310),
  ('Hamburg', 'Germany', 1892, 755), ('Rome', 'Italy', 2755, 1285), ('Milan', 'Italy', 1371, 182),
  ('Madrid', 'Spain', 3332, 604), ('Barcelona', 'Spain', 1620, 101), ('Lisbon', 'Portugal', 545, 100);
"""
TABLE = ("cities(name TEXT, country TEXT, population INTEGER /* thousands */, "
         "area INTEGER /* km2 */)")

# question, reference SQL whose single value is the answer
QUESTIONS = [
    ("What is the population of Paris?", "SELECT population FROM cities WHERE name = 'Paris'"),
    ("What is the population of Berlin?", "SELECT population FROM cities WHERE name = 'Berlin'"),
    ("What is the area of Rome?", "SELECT area FROM cities WHERE name = 'Rome'"),
    ("What is the area of Madrid?", "SELECT area FROM cities WHERE name = 'Madrid'"),
    ("In which country is Lyon?", "SELECT country FROM cities WHERE name = 'Lyon'"),
    ("In which country is Hamburg?", "SELECT country FROM cities WHERE name = 'Hamburg'"),
    ("In which country is Barcelona?", "SELECT country FROM cities WHERE name = 'Barcelona'"),
    ("Which city has the largest population?",
     "SELECT name FROM cities ORDER BY population DESC LIMIT 1"),
    ("Which city has the smallest population?",
     "SELECT name FROM cities ORDER BY population LIMIT 1"),
    ("Which city has the largest area?", "SELECT name FROM cities ORDER BY area DESC LIMIT 1"),
    ("Which city has the smallest area?", "SELECT name FROM cities ORDER BY area LIMIT 1"),
    ("How many cities are in Germany?", "SELECT COUNT(*) FROM cities WHERE country = 'Germany'"),
    ("How many cities are in France?", "SELECT COUNT(*) FROM cities WHERE country = 'France'"),
    ("How many cities are in the table?", "SELECT COUNT(*) FROM cities"),
    ("What is the total population of the cities in Italy?",
     "SELECT SUM(population) FROM cities WHERE country = 'Italy'"),
    ("What is the total population of the cities in Spain?",
     "SELECT SUM(population) FROM cities WHERE country = 'Spain'"),
    ("What is the population of Munich plus the population of Hamburg?",
     "SELECT SUM(population) FROM cities WHERE name IN ('Munich', 'Hamburg')"),
    ("What is the population of Lisbon?", "SELECT population FROM cities WHERE name = 'Lisbon'"),
    ("What is the area of Milan?", "SELECT area FROM cities WHERE name = 'Milan'"),
    ("What is the population of Madrid minus the population of Barcelona?",
     "SELECT (SELECT population FROM cities WHERE name = 'Madrid') - "
     "(SELECT population FROM cities WHERE name = 'Barcelona')"),
    ("What is the area of Berlin?", "SELECT area FROM cities WHERE name = 'Berlin'"),
    ("In which country is Marseille?", "SELECT country FROM cities WHERE name = 'Marseille'"),
]


def database() -> sqlite3.Connection:
    db = sqlite3.connect(":memory:", check_same_thread=False)
    db.executescript(SCHEMA)
    db.execute("PRAGMA query_only = 1")  # the tool is read-only
    return db


DB = database()


# The SQL subset the query tool takes, as a JSON-schema "pattern" (the fast path: llguidance
# enforces it token by token); the validator below is the slow path (SQLite must compile it).
_COL = "(name|country|population|area)"
_AGG = r"(COUNT\(\*\)|(SUM|MAX|MIN|AVG)\((population|area)\))"
_COND = "(name|country) = '[A-Z][a-z]{1,15}'"
SQL_PATTERN = (
    rf"^SELECT (\*|{_COL}(, {_COL}){{0,3}}|{_AGG}) FROM cities"
    rf"( WHERE {_COND}( (AND|OR) {_COND}){{0,2}})?"
    r"( ORDER BY (population|area)( DESC)?)?( LIMIT [1-9])?$"
)


class sql_query(BaseModel):  # noqa: N801 - the tool's name, as the model sees it
    """Run one read-only SQLite SELECT query on the table cities and return its rows."""

    query: str = Field(description=f"a SELECT query on {TABLE}", pattern=SQL_PATTERN)

    @field_validator("query")
    @classmethod
    def prepares(cls, q: str) -> str:
        if not q.lstrip().upper().startswith("SELECT") or ";" in q.rstrip().rstrip(";"):
            raise ValueError("one SELECT query")
        try:
            DB.execute(f"EXPLAIN {q}")  # compiles the query without running it
        except sqlite3.Error as e:
            raise ValueError(str(e)) from e
        return q


_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
        ast.Div: operator.truediv, ast.USub: operator.neg, ast.UAdd: operator.pos}


def _arith(node: ast.AST) -> float:
    if isinstance(node, ast.Expression):
        return _arith(node.body)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_arith(node.left), _arith(node.right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_arith(node.operand))
    raise ValueError("only numbers and + - * /")


class calculator(BaseModel):  # noqa: N801
    """Evaluate an arithmetic expression with numbers and + - * / and parentheses."""

    expression: str = Field(description="e.g. (2102 + 522) / 2",
                            pattern=r"^[0-9 +\-*/().]{1,40}$")

    @field_validator("expression")
    @classmethod
    def arithmetic(cls, e: str) -> str:
        try:
            _arith(ast.parse(e, mode="eval"))
        except (SyntaxError, ValueError, ZeroDivisionError, RecursionError) as err:
            raise ValueError(f"not arithmetic: {err}") from err
        return e


TOOLS = [sql_query, calculator]
SPECS = [convert_to_openai_tool(t) for t in TOOLS]
BY_NAME = {t.__name__: t for t in TOOLS}
SYSTEM = (f"You answer questions about a SQLite table {TABLE}. Look values up with "
          "sql_query, do arithmetic with calculator, then answer in one short sentence.")


def run_tool(name: str, args: dict[str, Any]) -> str:
    if name == "sql_query":
        try:
            return json.dumps(DB.execute(args["query"]).fetchall()[:10])
        except sqlite3.Error as e:
            return f"Error: {e}"
    value = _arith(ast.parse(args["expression"], mode="eval"))
    return str(int(value) if float(value).is_integer() else round(value, 4))


#: the tools as LangChain tools (what an agent framework runs); their argument schemas are
#: the pydantic classes above, validators included
LC_TOOLS = [
    StructuredTool.from_function(func=lambda query: run_tool("sql_query", {"query": query}),
                                 name="sql_query", description=sql_query.__doc__,
                                 args_schema=sql_query),
    StructuredTool.from_function(
        func=lambda expression: run_tool("calculator", {"expression": expression}),
        name="calculator", description=calculator.__doc__, args_schema=calculator),
]


def valid_call(name: str, args: Any) -> bool:
    """Valid: a declared tool, arguments its pydantic model (schema + validators) accepts."""
    if name not in BY_NAME or not isinstance(args, dict):
        return False
    try:
        BY_NAME[name].model_validate(args, strict=True)
    except ValidationError:
        return False
    return True


def expected_answer(sql: str) -> str:
    return str(DB.execute(sql).fetchone()[0])


def turn(chat: ChatAWRS, messages: list, first: bool, seed: int) -> AIMessage | None:
    """One unconstrained model turn, parsed leniently: text, tool calls, or None (a call
    that does not parse)."""
    system = SystemMessage(f"{SYSTEM}\n\n{render_tools(SPECS, 'sql_query' if first else 'auto')}")
    try:
        out = chat.invoke([system, *messages[1:]], seed=seed)
    except NoValidSampleError:
        return None
    calls = parse_tool_calls(out.content, strict=False)
    if calls is None:
        return None if first or "<tool_call>" in out.content else out
    return AIMessage("", tool_calls=[{"name": c.name, "args": c.arguments, "id": f"c{seed}{i}",
                                      "type": "tool_call"} for i, c in enumerate(calls)])


def graph_agent(chat: ChatAWRS, method: str, question: str, seed: int,
                max_turns: int = 3) -> tuple[str | None, int, int]:
    """LangGraph's ReAct agent on ChatAWRS; return (final text or None, valid calls, calls)."""
    import warnings

    from langgraph.errors import GraphRecursionError
    from langgraph.prebuilt import create_react_agent

    def pick(state: dict, runtime: Any) -> Any:  # the model of this turn
        turns = sum(isinstance(m, AIMessage) for m in state["messages"])
        first = not any(isinstance(m, ToolMessage) for m in state["messages"])
        return chat.bind_tools(LC_TOOLS, tool_choice="sql_query" if first else "auto").bind(
            seed=seed + turns)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # moved to langchain.agents
        graph = create_react_agent(pick, LC_TOOLS, prompt=SystemMessage(SYSTEM))
    answer, msgs = None, []
    try:  # a model turn and a tool turn per round: 2 graph steps each, + the end
        out = graph.invoke({"messages": [HumanMessage(question)]},
                           {"recursion_limit": 2 * max_turns + 1})
        msgs = out["messages"]
        if isinstance(msgs[-1], AIMessage) and not msgs[-1].tool_calls:
            answer = str(msgs[-1].content)
    except NoValidSampleError:  # every particle of a turn died: an unusable turn
        return None, 0, 1
    except GraphRecursionError:
        pass
    calls = [tc for m in msgs if isinstance(m, AIMessage) for tc in m.tool_calls]
    valid = sum(valid_call(tc["name"], tc["args"]) for tc in calls)
    assert valid == len(calls), f"{method} produced an invalid call {calls}"
    return answer, valid, len(calls)


def agent(chat: ChatAWRS, method: str, question: str, seed: int,
          max_turns: int = 3) -> tuple[str | None, int, int]:
    """Run the loop; return (final text or None, valid calls, calls)."""
    if method != "unconstrained":
        return graph_agent(chat, method, question, seed, max_turns)
    messages: list = [SystemMessage(SYSTEM), HumanMessage(question)]
    valid = total = 0
    for k in range(max_turns):
        msg = turn(chat, messages, first=k == 0, seed=seed + k)
        if msg is None:
            return None, valid, total + 1  # an unusable turn counts as an invalid call
        if not msg.tool_calls:
            return str(msg.content), valid, total
        messages.append(msg)
        for tc in msg.tool_calls:
            total += 1
            ok = valid_call(tc["name"], tc["args"])
            valid += ok
            result = run_tool(tc["name"], tc["args"]) if ok else "Error: invalid call"
            messages.append(ToolMessage(result, tool_call_id=tc["id"], name=tc["name"]))
    return None, valid, total


def main(particles: int = 4, questions: int = 20, max_tokens: int = 72,
         methods: tuple[str, ...] = ("awrs-smc", "lcd", "unconstrained")) -> dict[str, dict]:
    table: dict[str, dict] = {}
    print(f"{'method':14} {'valid calls':>12} {'correct':>8} {'seconds':>8}")
    for method in methods:
        chat = ChatAWRS(num_particles=particles, max_tokens=max_tokens,
                        method="lcd" if method == "lcd" else "awrs-smc")
        valid = total = correct = 0
        t0 = time.perf_counter()
        for i, (q, ref) in enumerate(QUESTIONS[:questions]):
            answer, v, n = agent(chat, method, q, seed=100 * i)
            valid, total = valid + v, total + n
            want = expected_answer(ref)
            correct += answer is not None and want.lower() in answer.replace(",", "").lower()
        secs = time.perf_counter() - t0
        share = valid / max(total, 1)
        table[method] = {"valid_calls": share, "calls": total, "correct": correct / questions,
                         "seconds": secs}
        print(f"{method:14} {share:12.2f} {correct / questions:8.2f} {secs:8.1f}"
              f"   ({valid}/{total} calls, {correct}/{questions} answers)")
    # the claim (asserted per call in agent()): every call awrs-smc and lcd produce is
    # valid; a turn where every particle died counts against them like a parse failure
    return table


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--particles", type=int, default=4)
    ap.add_argument("--questions", type=int, default=len(QUESTIONS))
    a = ap.parse_args()
    main(a.particles, a.questions)
