"""Drives Switchyard's MCP server (/api/v1/mcp) with the official MCP Python client (PyPI `mcp`), as an MCP host
would: initialize, list the tools, read a workflow's parameter schema, run it, wait for it with progress
notifications, fetch its result, see a refused run and a refused key. scripts/mcp-check.sh runs it in CI.

usage: mcp_client_check.py URL SK_KEY AK_KEY
"""

import asyncio
import sys

import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client


async def check(url, key, agent_key):
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=120) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                assert init.server_info.name == "cyberun-cloud", init.server_info
                assert init.capabilities.tools is not None, init.capabilities

                names = {tool.name for tool in (await session.list_tools()).tools}
                expected = {"list_workflows", "get_workflow", "run_workflow_by_slug", "get_task", "wait_for_task", "list_tasks",
                            "cancel_task", "get_task_result", "create_upload", "list_agents"}
                assert names == expected, names

                workflows = await session.call_tool("list_workflows", {})
                assert not workflows.is_error, workflows
                assert [w["workflow_slug"] for w in workflows.structured_content["workflow_list"]] == ["invert"], workflows

                workflow = await session.call_tool("get_workflow", {"workflow_slug": "invert"})
                schema = workflow.structured_content["parameters_schema"]
                assert schema["properties"]["color"] == {"type": "number", "minimum": 0, "maximum": 16777215, "default": 16744448,
                                                        "description": schema["properties"]["color"]["description"]}, schema

                refused = await session.call_tool("run_workflow_by_slug", {"workflow_slug": "invert", "parameters": {"color": 99999999}})
                assert refused.is_error, refused
                assert refused.content[0].text == 'HTTP 400: parameter "color": 99999999 is above max 16777215', refused.content

                run = await session.call_tool("run_workflow_by_slug", {"workflow_slug": "invert", "parameters": {"width": 64}})
                assert not run.is_error, run
                task_id = run.structured_content["task_id"]

                progress = []

                async def on_progress(value, total, message):
                    progress.append((value, total, message))

                waited = await session.call_tool("wait_for_task", {"task_id": task_id}, progress_callback=on_progress)
                assert not waited.is_error, waited
                assert waited.structured_content["task_status"] == "completed", waited.structured_content
                assert progress and progress[-1][0] == 100 and all(total == 100 for _, total, _ in progress), progress

                result = await session.call_tool("get_task_result", {"task_id": task_id})
                urls = result.structured_content["download_urls"]
                assert list(urls) == ["3.images.0"], urls
                image = await http.get(urls["3.images.0"], headers={"Authorization": ""})
                assert image.status_code == 200 and image.content[:8] == b"\x89PNG\r\n\x1a\n", image

                agents = await session.call_tool("list_agents", {})
                assert [a["agent_status"] for a in agents.structured_content["agent_list"]] == ["idle"], agents.structured_content
                print(f"mcp: {len(names)} tools; ran {task_id} with {len(progress)} progress notifications; output downloaded")

    # An agent key is refused before any tool runs.
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {agent_key}"}, timeout=30) as http:
        try:
            async with streamable_http_client(url, http_client=http) as (read, write):
                async with ClientSession(read, write, read_timeout_seconds=20) as session:
                    await session.initialize()
            raise AssertionError("an ak- key was accepted on /mcp")
        except AssertionError:
            raise
        except BaseException as error:  # the transport's refusal (HTTP 401), however this client version surfaces it
            print(f"mcp: an ak- key is refused ({type(error).__name__})")


if __name__ == "__main__":
    asyncio.run(check(*sys.argv[1:4]))
