"""The words of the alert mails, in zh-CN and en."""

# Chinese text uses full-width parentheses, commas and colons on purpose: correct typography.
# ruff: noqa: RUF001

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Texts:
    """Every phrase a mail uses, in one language."""

    titles: dict[str, str]
    severities: dict[str, str]
    labels: dict[str, str]  # label and figure names
    values: dict[str, str]  # string figure values (reasons, error levels)
    firing_subject: str  # {school} {school_id} {title} {more}
    resolved_subject: str
    more: str  # {n}
    school_line: str  # {school} {school_id} {district}
    firing_head: str  # {n}
    resolved_head: str  # {n}
    since: str  # {time}
    span: str  # {start} {end}
    new_mark: str  # appended to a new alert's heading
    muted: str  # {n}
    dashboard: str  # {link}
    footer: str


ZH: Final = Texts(
    titles={
        "agent_offline": "采集代理离线",
        "internet_down": "学校互联网中断",
        "bandwidth_low": "接入带宽低于目标",
        "device_down": "多媒体设备离线",
        "projector_error": "投影机故障",
        "lamp_hours": "投影机灯泡超时",
        "wifi_poor": "教室无线信号差",
        "spool_dropping": "代理缓存丢弃数据",
        "storage_refusing": "采集服务器无法写入数据库",
        "agent_clock_wrong": "代理电脑时钟错误（数据时间已校正）",
    },
    severities={"critical": "严重", "error": "故障", "warning": "警告"},
    labels={
        "agent": "代理", "role": "角色", "device": "设备", "classroom": "教室",
        "device_type": "设备类型", "category": "学校类别", "reason": "原因",
        "last_data_ms": "最后收到数据", "targets_down": "不可达目标", "wan_down": "断开的外网口",
        "down_mbps": "实测下行带宽 (Mbps)", "target_mbps": "目标 (Mbps)",
        "tests_below": "连续低于目标的测速次数", "down_minutes": "已离线 (分钟)",
        "err_fan": "风扇", "err_lamp": "灯泡", "err_temp": "温度", "err_cover": "机盖",
        "err_filter": "滤网", "err_other": "其他", "lamp_hours": "灯泡使用小时",
        "lamp_hours_max": "上限 (小时)", "best_rssi_dbm": "最强信号 (dBm)",
        "threshold_dbm": "阈值 (dBm)", "bssid": "接入点 BSSID", "dropped": "窗口内丢弃样本数",
        "dropped_total": "累计丢弃样本数",
        "storage_cause": "故障原因", "storage_detail": "详情（含处理方法）",
        "failures_total": "失败写入次数",
        "clock_offset_min": "代理时钟偏差（分钟，负数为偏慢）",
    },
    values={
        "last_will": "遗嘱消息（连接异常断开）", "no_data": "上课时间内无数据", "error": "故障",
        "warning": "警告", "gateway": "网关", "classroom_pc": "教室电脑", "server": "服务器",
        "urban": "城镇", "rural": "农村", "teaching_point": "教学点", "projector": "投影机",
        "panel": "交互式平板", "pc": "电脑", "display": "显示屏", "speaker": "音箱",
        "database_missing": "数据库不存在", "bucket_missing": "存储桶不存在",
        "auth": "用户名或密码错误", "forbidden": "无写入权限", "unreachable": "数据库无法连接",
        "server_error": "数据库内部错误", "retention_policy_missing": "保留策略不存在",
        "limit": "数据库序列数超出上限", "not_durable": "数据未落盘",
    },
    firing_subject="[schoolmon 告警] {school}（{school_id}）：{title}{more}",
    resolved_subject="[schoolmon 已恢复] {school}（{school_id}）：{title}{more}",
    more=" 等 {n} 项",
    school_line="学校：{school}（{school_id}），{district}",
    firing_head="正在告警（{n} 项）：",
    resolved_head="已恢复（{n} 项）：",
    since="开始于 {time}",
    span="{start} 至 {end}",
    new_mark="（新）",
    muted="另有 {n} 项由此引起的告警（设备、无线、测速等）已被抑制。",
    dashboard="学校仪表盘：{link}",
    footer="此邮件由 schoolmon 自动发送。",
)

EN: Final = Texts(
    titles={
        "agent_offline": "Agent offline",
        "internet_down": "School internet down",
        "bandwidth_low": "Access bandwidth below target",
        "device_down": "Classroom device down",
        "projector_error": "Projector error",
        "lamp_hours": "Projector lamp hours over limit",
        "wifi_poor": "Classroom Wi-Fi poor",
        "spool_dropping": "Agent spool dropping data",
        "storage_refusing": "Collector storage refusing writes",
        "agent_clock_wrong": "Agent clock wrong (its timestamps are corrected)",
    },
    severities={"critical": "critical", "error": "error", "warning": "warning"},
    labels={
        "agent": "agent", "role": "role", "device": "device", "classroom": "classroom",
        "device_type": "device type", "category": "school category", "reason": "reason",
        "last_data_ms": "last data", "targets_down": "unreachable targets",
        "wan_down": "WAN links down", "down_mbps": "measured download (Mbps)",
        "target_mbps": "target (Mbps)", "tests_below": "consecutive tests below target",
        "down_minutes": "down for (minutes)", "err_fan": "fan", "err_lamp": "lamp",
        "err_temp": "temperature", "err_cover": "cover", "err_filter": "filter",
        "err_other": "other", "lamp_hours": "lamp hours", "lamp_hours_max": "limit (hours)",
        "best_rssi_dbm": "best signal (dBm)", "threshold_dbm": "threshold (dBm)",
        "bssid": "access point BSSID", "dropped": "samples dropped in window",
        "dropped_total": "samples dropped in total",
        "storage_cause": "cause", "storage_detail": "detail (and fix)",
        "failures_total": "failed writes",
        "clock_offset_min": "agent clock off by (minutes, negative: slow)",
    },
    values={
        "last_will": "last will (connection lost)", "no_data": "no data in school hours",
        "error": "error", "warning": "warning", "gateway": "gateway",
        "classroom_pc": "classroom PC", "server": "server", "urban": "urban", "rural": "rural",
        "teaching_point": "teaching point", "database_missing": "database does not exist",
        "bucket_missing": "bucket does not exist", "auth": "wrong credentials",
        "forbidden": "no write permission", "unreachable": "storage unreachable",
        "server_error": "storage server error",
        "retention_policy_missing": "retention policy does not exist",
        "limit": "series limit reached", "not_durable": "not on disk",
    },
    firing_subject="[schoolmon FIRING] {school} ({school_id}): {title}{more}",
    resolved_subject="[schoolmon RESOLVED] {school} ({school_id}): {title}{more}",
    more=" and {n} more",
    school_line="School: {school} ({school_id}), {district}",
    firing_head="Firing ({n}):",
    resolved_head="Resolved ({n}):",
    since="since {time}",
    span="{start} to {end}",
    new_mark=" (new)",
    muted="{n} more alerts caused by this (devices, Wi-Fi, speed tests) are muted.",
    dashboard="School dashboard: {link}",
    footer="Sent by schoolmon.",
)

TEXTS: Final = {"zh-CN": ZH, "en": EN}
