/** Labels in English and Chinese; the browser's language chooses (zh* → Chinese). */
const EN = {
  title: 'mediajobs console', overview: 'Overview', jobs: 'Jobs & tasks', queues: 'Queues', workers: 'Workers', apps: 'Apps', callbacks: 'Callbacks',
  login: 'Log in', logout: 'Log out', adminToken: 'Admin token', or: 'or an app’s keys', secretId: 'SecretId', secretKey: 'SecretKey',
  loginHelp: 'The admin token is printed by `mediajobs serve` (or set by MEDIAJOBS_ADMIN_TOKEN). An app’s SecretId/SecretKey shows that app only.',
  waiting: 'Waiting', paused: 'Paused', running: 'Running', succeeded: 'Succeeded (1 h)', failed: 'Failed (1 h)', cancelled: 'Cancelled (1 h)',
  oldestWaiting: 'Oldest waiting', workersUp: 'Workers up', callbacksPending: 'Callbacks pending', callbacksGivenUp: 'Callbacks given up',
  throughput: 'Jobs ended per minute, last hour', live: 'live', offline: 'reconnecting…',
  app: 'App (APPID)', queue: 'Queue', tag: 'Tag / task type', state: 'State', kind: 'Kind', input: 'Input object', from: 'Created from', to: 'to',
  any: 'any', job: 'job', task: 'task', filter: 'Filter', clear: 'Clear', more: 'Older →', newest: '← Newest',
  id: 'Id', created: 'Created', started: 'Started', ended: 'Ended', progress: 'Progress', attempts: 'Attempts', worker: 'Worker', code: 'Code', message: 'Message',
  cancel: 'Cancel', confirmCancel: 'Cancel this job?', retry: 'Retry', confirmRetry: 'Run this job again (one more attempt)?', retryHelp: 'Back to its queue as one more attempt of the same job', timeline: 'Timeline', outputs: 'Outputs', deliveries: 'Callback deliveries', noDeliveries: 'No callback for this job.',
  detail: 'Detail', back: '← Jobs', jobsDetail: 'JobsDetail (as GET /jobs/<id> answers)', taskJson: 'Task (as get_task answers)',
  name: 'Name', bucket: 'Bucket', maxConcurrent: 'MaxConcurrent', notify: 'NotifyConfig', pause: 'Pause', resume: 'Resume', save: 'Save',
  host: 'Host / process', types: 'Types', slots: 'Slots', lastSeen: 'Last seen', gone: 'gone', active: 'active', runningJobs: 'Running',
  create: 'Create', newApp: 'New app name', rotate: 'Rotate keys', disable: 'Disable', disabled: 'disabled', keysOnce: 'Keys of {name}: shown once, copy them now.',
  confirmRotate: 'Rotate this app’s keys? The old ones stop working.', confirmDisable: 'Disable this app?',
  pending: 'Pending', delivered: 'Delivered', givenUp: 'Given up', redeliver: 'Redeliver', url: 'URL', nextAttempt: 'Next attempt', lastResult: 'Last result',
  none: 'Nothing here.', theme: 'Theme', queryMs: 'query {ms} ms', elapsed: '{s} s',
  states: { Submitted: 'Submitted', Running: 'Running', Success: 'Success', Failed: 'Failed', Pause: 'Pause', Cancel: 'Cancel', Retry: 'Retry', Released: 'Released' },
  attemptStates: 'Retry: back in its queue, attempt counted. Released: handed back, not counted.',
};
const ZH = {
  title: 'mediajobs 控制台', overview: '概览', jobs: '任务', queues: '队列', workers: '处理器', apps: '应用', callbacks: '回调',
  login: '登录', logout: '退出', adminToken: '管理员令牌', or: '或应用密钥', secretId: 'SecretId', secretKey: 'SecretKey',
  loginHelp: '管理员令牌由 `mediajobs serve` 打印（或由 MEDIAJOBS_ADMIN_TOKEN 设置）。使用应用的 SecretId/SecretKey 登录只显示该应用。',
  waiting: '等待中', paused: '已暂停', running: '处理中', succeeded: '成功（1 小时）', failed: '失败（1 小时）', cancelled: '已取消（1 小时）',
  oldestWaiting: '最久等待', workersUp: '在线处理器', callbacksPending: '待回调', callbacksGivenUp: '回调已放弃',
  throughput: '每分钟完成任务数（最近 1 小时）', live: '实时', offline: '重新连接中…',
  app: '应用 (APPID)', queue: '队列', tag: 'Tag / 任务类型', state: '状态', kind: '类别', input: '输入对象', from: '创建时间从', to: '到',
  any: '全部', job: '作业', task: '任务', filter: '筛选', clear: '清除', more: '更早 →', newest: '← 最新',
  id: 'ID', created: '创建', started: '开始', ended: '结束', progress: '进度', attempts: '尝试', worker: '处理器', code: '代码', message: '信息',
  cancel: '取消', confirmCancel: '取消此任务？', retry: '重试', confirmRetry: '再次运行此任务（增加一次尝试）？', retryHelp: '以同一任务的新一次尝试回到队列', timeline: '时间线', outputs: '输出', deliveries: '回调投递', noDeliveries: '此任务没有回调。',
  detail: '详情', back: '← 任务', jobsDetail: 'JobsDetail（与 GET /jobs/<id> 相同）', taskJson: '任务（与 get_task 相同）',
  name: '名称', bucket: '存储桶', maxConcurrent: '最大并发', notify: '通知配置', pause: '暂停', resume: '恢复', save: '保存',
  host: '主机 / 进程', types: '类型', slots: '槽位', lastSeen: '最后在线', gone: '离线', active: '在线', runningJobs: '运行中',
  create: '创建', newApp: '新应用名称', rotate: '轮换密钥', disable: '停用', disabled: '已停用', keysOnce: '{name} 的密钥只显示一次，请立即复制。',
  confirmRotate: '轮换此应用的密钥？旧密钥将失效。', confirmDisable: '停用此应用？',
  pending: '待投递', delivered: '已投递', givenUp: '已放弃', redeliver: '重新投递', url: 'URL', nextAttempt: '下次尝试', lastResult: '最近结果',
  none: '暂无数据。', theme: '主题', queryMs: '查询 {ms} 毫秒', elapsed: '{s} 秒',
  states: { Submitted: '已提交', Running: '处理中', Success: '成功', Failed: '失败', Pause: '暂停', Cancel: '已取消', Retry: '重新排队', Released: '已交回' },
  attemptStates: '重新排队：回到队列，计入尝试次数。已交回：交回队列，不计入。',
};

export const lang = (navigator.languages?.[0] ?? navigator.language ?? 'en').toLowerCase().startsWith('zh') ? 'zh' : 'en';
const labels = lang === 'zh' ? ZH : EN;
document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';

/** A label, with {name} placeholders filled from `vars`. */
export function t(key, vars = {}) {
  const text = labels[key] ?? EN[key] ?? key;
  return typeof text === 'string' ? text.replace(/\{(\w+)\}/g, (_, k) => String(vars[k] ?? '')) : text;
}

/** A job state's label (the CI name stays in the title). */
export function stateLabel(state) {
  return labels.states[state] ?? state;
}
